"""Group commit: concurrent calls share transactions, and still each hears about its own entry only; the
deciding thread commits its own entry while commits are quick."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cds.audit import AuditStore
from cds.audit.group import GroupCommit, Pending
from cds.audit.sqlite import PROBE_EVERY, SLOW_COMMIT_S, InlineCommits


def entry(name: str, cards: tuple[str, ...] = ()) -> Pending:
    return Pending.of("decision", name, "imatinib-order-sign", {"name": name}, cards)


def test_concurrent_submissions_form_one_chain_and_each_caller_gets_its_own_seq(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path}/audit.sqlite3")
    futures: dict[str, Future[int]] = {}
    lock = threading.Lock()

    def caller(n: int) -> None:
        for i in range(25):
            future = store.submit(entry(f"h-{n}-{i}"))
            with lock:
                futures[f"h-{n}-{i}"] = future

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = {name: future.result(timeout=30) for name, future in futures.items()}
    try:
        assert sorted(seqs.values()) == list(range(1, 201))
        for name, seq in seqs.items():
            record = store.decision(name)
            assert record is not None and record["seq"] == seq and record["payload"] == {"name": name}
        assert store.verify().ok
    finally:
        store.dispose()


def test_a_card_shown_twice_in_one_batch_points_at_the_later_decision(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path}/audit.sqlite3")
    try:
        first, second = store.append_many([entry("retry", ("card-1",)), entry("retry", ("card-1", "card-2"))])
        assert (first, second) == (1, 2)
        assert store.card("card-1") == ("retry", 2) and store.card("card-2") == ("retry", 2)
        assert store.verify().ok
    finally:
        store.dispose()


class FlakyWriter:
    """Fails any batch holding an entry named 'bad'; remembers what it committed."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self.busy = threading.Event()  # set once the writer holds its first batch
        self.gate = threading.Event()

    def __call__(self, batch: Sequence[Pending]) -> list[int]:
        self.busy.set()
        self.gate.wait(10)
        if any(e.hook_instance == "bad" for e in batch):
            raise RuntimeError("disk full")
        self.committed += [e.hook_instance for e in batch]
        return [len(self.committed) - len(batch) + i + 1 for i in range(len(batch))]


def test_one_entry_that_cannot_be_written_does_not_fail_the_others_of_its_batch() -> None:
    writer = FlakyWriter()
    group = GroupCommit(writer)
    blocker = group.submit(entry("first"))  # holds the writer while the next three queue into one batch
    assert writer.busy.wait(10)
    futures = [group.submit(entry(name)) for name in ("a", "bad", "b")]
    writer.gate.set()
    group.close()
    assert blocker.result() == 1
    assert futures[0].result() == 2 and futures[2].result() == 3
    with pytest.raises(RuntimeError, match="disk full"):
        futures[1].result()
    assert writer.committed == ["first", "a", "b"]


def test_a_caller_that_stopped_waiting_still_has_its_decision_recorded() -> None:
    writer = FlakyWriter()
    group = GroupCommit(writer)
    blocker = group.submit(entry("first"))
    assert writer.busy.wait(10)
    abandoned = group.submit(entry("abandoned"))
    assert abandoned.cancel()
    writer.gate.set()
    group.close()
    assert blocker.result() == 1
    with pytest.raises(CancelledError):
        abandoned.result()
    assert writer.committed == ["first", "abandoned"]


def test_the_deciding_thread_commits_its_own_entry_while_commits_are_quick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "quick" is the disk's speed; on a loaded machine an fsync can take longer than 1 ms, which is not this test's
    # subject, so every commit here counts as quick
    monkeypatch.setattr("cds.audit.sqlite.SLOW_COMMIT_S", float("inf"))
    store = AuditStore(f"sqlite:///{tmp_path}/audit.sqlite3")
    try:
        committed = [store.record(entry(f"h-{i}", (f"card-{i}",))) for i in range(5)]
        assert all(f.done() for f in committed)  # no writer thread was needed
        assert [f.result() for f in committed] == [1, 2, 3, 4, 5]
        assert store._group is None
        assert store.card("card-3") == ("h-3", 4) and store.verify().ok
    finally:
        store.dispose()


def test_a_commit_that_fails_in_the_deciding_thread_is_reported_to_its_caller_only(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path}/audit.sqlite3")
    try:
        assert store.record(entry("first")).result() == 1
        with store.engine.begin() as conn:  # a row in the way of the next entry: its insert must fail
            conn.exec_driver_sql(
                "INSERT INTO audit_entries (seq, kind, hook_instance, service_id, created_at, payload, prev_hash,"
                " entry_hash) VALUES (2, 'decision', 'x', 'x', 'now', '{}', 'p', 'e')"
            )
        failed = store.record(entry("second"))
        with pytest.raises(Exception, match="UNIQUE"):
            failed.result()
        assert store.count() == 1  # rolled back: the head did not move
        assert store.claim("jti-1", "iss", datetime.now(UTC) + timedelta(minutes=1))  # no transaction left open
    finally:
        store.dispose()


def test_commits_move_to_the_group_writer_while_they_are_slow_and_come_back() -> None:
    policy = InlineCommits(enabled=True)
    assert policy.worth_trying()
    for _ in range(10):
        policy.observe(SLOW_COMMIT_S * 5)
    tries = [policy.worth_trying() for _ in range(PROBE_EVERY * 3)]
    assert tries.count(True) == 3  # one probe every PROBE_EVERY calls
    for _ in range(20):
        policy.observe(SLOW_COMMIT_S / 10)
    assert policy.worth_trying()
    assert not InlineCommits(enabled=False).worth_trying()  # PostgreSQL: always the group writer
