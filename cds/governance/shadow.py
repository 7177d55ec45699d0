"""Shadow evaluation: a candidate rule set evaluated on every live decision, off the response path.

``serve --shadow-rules DIR`` starts one ``ShadowEvaluator`` in a process of its own, at a lower CPU priority.
It follows the audit log: each decision the service committed (and so had already answered) is evaluated
again with the candidate, as `audit replay` does, and the two advices are written to ``audit_shadow``, a table
outside the chain. Nothing of it ever reaches a response; the live workers neither wait for it nor know of
it. Restarted, it resumes after the last decision it evaluated for the same candidate.
"""

from __future__ import annotations

import json
import logging
import logging.config
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from cds.audit import AuditStore
from cds.audit.tables import entries, shadow, shadow_progress
from cds.governance.advice import rules_behind
from cds.governance.replay import Replayed, rerun_entry
from cds.pipeline import Pipeline

log = logging.getLogger("cds.shadow")
POLL_S = 1.0  # how long the evaluator sleeps when it has caught up with the log
BATCH = 100  # decisions read and written per transaction
STOP_WAIT_S = 10.0  # how long a stopping service waits for the evaluator to finish its batch


class ShadowEvaluator:
    def __init__(self, store: AuditStore, pipeline: Pipeline) -> None:
        self.store, self.pipeline = store, pipeline
        self.candidate = pipeline.rule_set.digest
        dialect = postgresql if store.engine.dialect.name == "postgresql" else sqlite
        self._insert_rows = dialect.insert(shadow).on_conflict_do_nothing(index_elements=["candidate", "seq"])
        self.after = start_point(store, self.candidate)

    def catch_up(self) -> int:
        """Evaluate every decision committed since the last call; how many were evaluated."""
        done = 0
        while True:
            batch = self._next_decisions()
            if not batch:
                return done
            rows = [self._row(rerun_entry(self.pipeline, e)) for e in batch if e["payload"].get("status") == "ok"]
            last = int(batch[-1]["seq"])
            with self.store.engine.begin() as conn:  # rows and progress together: a crash redoes the batch whole
                if rows:  # another evaluator of the same candidate (a second host) may have written them first
                    conn.execute(self._insert_rows, rows)
                conn.execute(
                    update(shadow_progress)
                    .where(shadow_progress.c.candidate == self.candidate, shadow_progress.c.seq < last)
                    .values(seq=last)
                )
            self.after = last
            done += len(batch)

    def _next_decisions(self) -> list[dict[str, Any]]:
        query = (
            select(entries.c.seq, entries.c.hook_instance, entries.c.payload, entries.c.client)
            .where(entries.c.seq > self.after, entries.c.kind == "decision")
            .order_by(entries.c.seq)
            .limit(BATCH)
        )
        with self.store.reading() as conn:
            return [{**row, "payload": json.loads(row["payload"])} for row in conn.execute(query).mappings()]

    def _row(self, replayed: Replayed) -> dict[str, Any]:
        outcome = {
            "version": self.pipeline.rule_set.version,
            "live": replayed.before.brief(),
            "shadow": replayed.after.brief() if replayed.after is not None else None,
            "differs": replayed.differs,
            "rules": rules_behind(replayed.before, replayed.after) if replayed.after and replayed.differs else [],
            "problem": replayed.problem,
        }
        return {
            "candidate": self.candidate,
            "seq": replayed.seq,
            "hook_instance": replayed.hook_instance,
            "created_at": _now(),
            "outcome": json.dumps(outcome, ensure_ascii=False, sort_keys=True),
        }

    def follow(self, stop: threading.Event | Any, poll_s: float = POLL_S, parent: int | None = None) -> None:
        """Until ``stop`` is set, or the process ``parent`` (the service) is gone: a service killed outright, or
        one whose server ends the process on SIGTERM before cleaning up, must not leave its evaluator behind."""
        while not stop.is_set() and (parent is None or os.getppid() == parent):
            try:
                if not self.catch_up():
                    stop.wait(poll_s)
            except Exception:  # the live service must not notice: log, wait, try again
                log.exception("shadow evaluation failed; retrying in %.0f s", poll_s * 10)
                stop.wait(poll_s * 10)


def run_shadow(database_url: str, rules_dir: Path, stop: Any, log_config: dict[str, Any], parent: int) -> None:
    """The shadow process: lower priority than the live workers, until ``stop`` is set; logs as they do."""
    os.nice(10)
    logging.config.dictConfig(log_config)
    pipeline = Pipeline(rules_dir)
    store = AuditStore(database_url)
    try:
        evaluator = ShadowEvaluator(store, pipeline)
        log.info(
            "shadow rules in %s (digest %s) follow the audit log after entry %d",
            rules_dir,
            pipeline.rule_set.digest[:12],
            evaluator.after,
        )
        evaluator.follow(stop, parent=parent)
    finally:
        store.dispose()


def start_point(store: AuditStore, candidate: str) -> int:
    """The entry after which shadowing ``candidate`` goes on: where it stopped, or for a new candidate the
    log's head now (what came before is `audit replay`'s to look at)."""
    with store.engine.begin() as conn:
        seq = conn.execute(select(shadow_progress.c.seq).where(shadow_progress.c.candidate == candidate)).scalar()
        if seq is not None:
            return int(seq)
        head = store.count()
        conn.execute(insert(shadow_progress).values(candidate=candidate, seq=head, started_at=_now()))
        return head


@contextmanager
def shadow_process(database_url: str, rules_dir: Path, candidate: str, log_config: dict[str, Any]) -> Iterator[None]:
    """The shadow evaluator in a process of its own (spawned: nothing of the parent's threads or locks is
    inherited) while the service runs; stopped, and given time to finish its batch, when the service stops.
    Where it starts is fixed here, before the service answers a call: every decision from then on is shadowed,
    however long the process takes to load the candidate."""
    store = AuditStore(database_url)
    try:
        start_point(store, candidate)
    finally:
        store.dispose()
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(
        target=run_shadow,
        args=(database_url, rules_dir, stop, log_config, os.getpid()),
        name="imatinib-cds-shadow",
        daemon=True,
    )
    process.start()
    log.info("shadow evaluator started as process %d", process.pid)  # benchmarks tell it from the workers by this
    try:
        yield
    finally:
        stop.set()
        process.join(STOP_WAIT_S)
        if process.is_alive():
            process.terminate()


def wait_until_caught_up(store: AuditStore, candidate: str, timeout_s: float) -> bool:
    """For tests and benchmarks: whether the shadow evaluator read the whole log in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with store.reading() as conn:
            done = conn.execute(select(shadow_progress.c.seq).where(shadow_progress.c.candidate == candidate))
            seq = done.scalar()
        if seq is not None and seq >= store.count():
            return True
        time.sleep(0.1)
    return False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
