"""The audit chain anchored outside the database (issue 15, items 5 and 6).

Each tampering an operator with write access to the database can do is done here, and the chain recomputed
afterwards so that a plain ``verify`` passes: only the signed checkpoints, kept apart, can tell. Every test
runs on SQLite and, when IMATINIB_CDS_TEST_POSTGRES_URL is set (CI), on PostgreSQL in a schema of its own.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text

from cds.audit import AuditStore
from cds.audit.chain import GENESIS, entry_hash
from cds.audit.checkpoint import Checkpoint, Checkpoints, CheckpointSigner, read_checkpoints
from cds.cli.main import main
from cds.service.app import create_app
from cds.service.config import ServiceConfig
from tests.conftest import examples_clock, postgres_schema
from tests.service.conftest import example, service_for

SCHEMA = "audit_anchor_test"
LEGACY = Path(__file__).parent / "data" / "audit-before-client-scoping.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with postgres_schema(SCHEMA, request.param, tmp_path) as database:
        yield database


@dataclass
class Keys:
    private: Path
    public: Path


def keys(tmp_path: Path, name: str) -> Keys:
    pair = Keys(tmp_path / f"{name}.pem", tmp_path / f"{name}.pub")
    assert main(["audit", "keygen", "--private-key", str(pair.private), "--public-key", str(pair.public)]) == 0
    return pair


@pytest.fixture()
def key(tmp_path: Path) -> Keys:
    return keys(tmp_path, "checkpoint")


@pytest.fixture()
def log(url: str, tmp_path: Path, key: Keys) -> Iterator[tuple[str, Path]]:
    """Four decisions (with cards) and a feedback, a signed checkpoint after them, then one more decision."""
    store = AuditStore(url)
    for n in range(4):
        store.append("decision", f"hook-{n}", "imatinib-order-sign", {"n": n}, (f"card-{n}a", f"card-{n}b"))
    store.append("feedback", "hook-1", "imatinib-order-sign", {"feedback": {"card": "card-1a", "outcome": "accepted"}})
    store.dispose()
    checkpoints = tmp_path / "checkpoints.jsonl"
    assert checkpoint(url, key, checkpoints) == 0
    store = AuditStore(url)
    store.append("decision", "hook-5", "imatinib-order-sign", {"n": 5})
    store.dispose()
    yield url, checkpoints


def checkpoint(url: str, key: Keys, checkpoints: Path) -> int:
    return main(["audit", "--db", url, "checkpoint", "--key", str(key.private), "--checkpoints", str(checkpoints)])


def verify(url: str, checkpoints: Path, *public: Path) -> int:
    keys = [arg for p in public for arg in ("--public-key", str(p))]
    return main(["audit", "--db", url, "verify", "--checkpoints", str(checkpoints), *keys])


def tamper(url: str, *statements: str) -> None:
    """What an operator with write access does, then hashes and head recomputed so the chain looks whole."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    recompute(engine)
    engine.dispose()


def recompute(engine: Engine) -> None:
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM audit_entries ORDER BY seq")).mappings().all()
        prev = GENESIS
        for seq, row in enumerate(rows, 1):
            fixed = {**row, "seq": seq}
            digest = entry_hash(prev, fixed)
            conn.execute(
                text("UPDATE audit_entries SET seq = :seq, prev_hash = :prev, entry_hash = :hash WHERE seq = :old"),
                {"seq": seq, "prev": prev, "hash": digest, "old": row["seq"]},
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = :seq, entry_hash = :hash"), {"seq": len(rows), "hash": prev})


# --- item 5: verify never creates a database ----------------------------------------------------------------


def test_verify_of_a_missing_database_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "audit.sqlite3"
    assert main(["audit", "--db", f"sqlite:///{missing}", "verify"]) == 1
    err = capsys.readouterr().err
    assert err == f"imatinib-cds: AuditLogMissing: no audit log at {missing}\n"
    assert not missing.exists() and not missing.parent.exists()
    for command in (["show", "h"], ["export"]):
        assert main(["audit", "--db", f"sqlite:///{missing}", *command]) == 1
    assert not missing.parent.exists()


def test_verify_of_a_database_with_no_audit_log_creates_no_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", url, "verify", "--allow-empty"]) == 1
    assert capsys.readouterr().err.startswith("imatinib-cds: AuditLogMissing: no audit log ")
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            assert not inspect(conn).get_table_names()
        engine.dispose()
    else:
        assert not Path(url.removeprefix("sqlite:///")).exists()


def test_verify_of_an_empty_log_is_an_error_unless_allowed(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    AuditStore(url).dispose()
    assert main(["audit", "--db", url, "verify"]) == 1
    assert capsys.readouterr().err == "imatinib-cds: the audit log is empty (--allow-empty if that is expected)\n"
    assert main(["audit", "--db", url, "verify", "--allow-empty"]) == 0
    assert capsys.readouterr().out == "audit chain intact: 0 entries\n"


def test_verify_of_a_database_without_an_audit_log_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert main(["audit", "--db", f"sqlite:///{other}", "verify"]) == 1
    assert capsys.readouterr().err.startswith("imatinib-cds: AuditLogMissing: no audit log in sqlite:///")
    assert sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]


# --- item 6: signed checkpoints -----------------------------------------------------------------------------


def test_a_clean_chain_meets_its_checkpoints(
    log: tuple[str, Path], key: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoints = log
    assert verify(url, checkpoints, key.public) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit chain intact: 6 entries; 1 signed checkpoints hold, the latest at entry 5 (")
    (written,) = read_checkpoints(checkpoints)
    assert written.seq == 5 and written.key_id == CheckpointSigner.from_file(key.private).key_id


TAMPERING = {
    "rewrite a decision": ["UPDATE audit_entries SET payload = '{\"n\":99}' WHERE seq = 2"],
    "truncate": ["DELETE FROM audit_entries WHERE seq >= 4", "DELETE FROM audit_cards WHERE seq >= 4"],
    "delete everything": ["DELETE FROM audit_entries", "DELETE FROM audit_cards"],
    "edit feedback": [
        'UPDATE audit_entries SET payload = \'{"feedback":{"card":"card-1a","outcome":"overridden"}}\''
        " WHERE kind = 'feedback'"
    ],
    "edit a card and the decision that listed it": [
        "UPDATE audit_cards SET card_uuid = 'card-9z' WHERE card_uuid = 'card-2b'",
        'UPDATE audit_entries SET cards = \'["card-2a","card-9z"]\' WHERE seq = 3',
    ],
}


@pytest.mark.parametrize("statements", TAMPERING.values(), ids=TAMPERING.keys())
def test_each_rewrite_passes_the_plain_check_but_not_the_checkpoints(
    log: tuple[str, Path], key: Keys, statements: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoints = log
    tamper(url, *statements)
    assert main(["audit", "--db", url, "verify", "--allow-empty"]) == 0  # the rewrite is consistent in itself
    capsys.readouterr()
    assert verify(url, checkpoints, key.public) == 1
    out = capsys.readouterr().out
    assert out.startswith("audit chain BROKEN at entry ") and (
        "differs from the signed checkpoint" in out or "a signed checkpoint names entry 5 but the log ends" in out
    ), out


def test_the_card_index_is_covered_by_the_chain(log: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """audit_cards maps a card to the decision feedback is attributed to: editing it alone breaks the chain."""
    url, _ = log
    edits = {
        "UPDATE audit_cards SET seq = 1, hook_instance = 'hook-0' WHERE card_uuid = 'card-3a'": "elsewhere",
        "UPDATE audit_cards SET client = 'https://other.example' WHERE card_uuid = 'card-3a'": "elsewhere",
        "DELETE FROM audit_cards WHERE card_uuid = 'card-3a'": "lacks card card-3a",
        "INSERT INTO audit_cards (card_uuid, hook_instance, seq, client) VALUES ('forged', 'hook-0', 1, '')": "forged",
    }
    engine = create_engine(url)
    for statement, reason in edits.items():
        with engine.begin() as conn:
            saved = conn.execute(text("SELECT * FROM audit_cards")).mappings().all()
            conn.exec_driver_sql(statement)
        assert main(["audit", "--db", url, "verify"]) == 1
        assert reason in capsys.readouterr().out
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit_cards")
            conn.execute(text("INSERT INTO audit_cards VALUES (:card_uuid, :hook_instance, :seq, :client)"), saved)
        assert main(["audit", "--db", url, "verify"]) == 0
    engine.dispose()


def test_checkpoints_signed_by_an_unknown_key_or_forged_are_refused(
    log: tuple[str, Path], key: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoints = log
    stranger = keys(tmp_path, "stranger")
    assert verify(url, checkpoints, stranger.public) == 1
    assert "is not among the public keys given" in capsys.readouterr().err
    # an operator who rewrote the chain writes the checkpoint its rewrite needs, without the key
    (real,) = read_checkpoints(checkpoints)
    tamper(url, "UPDATE audit_entries SET payload = '{\"n\":99}' WHERE seq = 2")
    store = AuditStore(url)
    rewritten = next(e["entry_hash"] for e in store.export() if e["seq"] == real.seq)
    store.dispose()
    forged = Checkpoint(real.seq, rewritten, real.time, real.key_id, real.signature)
    checkpoints.write_text(forged.line() + "\n")
    assert verify(url, checkpoints, key.public) == 1
    assert "does not carry a valid signature" in capsys.readouterr().err
    assert main(["audit", "--db", url, "verify", "--checkpoints", str(checkpoints)]) == 2  # no key: no trust


def test_key_rotation_keeps_old_checkpoints_verifiable(
    log: tuple[str, Path], key: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoints = log
    rotated = keys(tmp_path, "rotated")
    store = AuditStore(url)
    store.append("decision", "hook-6", "imatinib-order-sign", {"n": 6})
    store.dispose()
    assert checkpoint(url, rotated, checkpoints) == 0
    assert [c.key_id for c in read_checkpoints(checkpoints)] == [
        CheckpointSigner.from_file(p).key_id for p in (key.private, rotated.private)
    ]
    assert verify(url, checkpoints, key.public, rotated.public) == 0
    assert "2 signed checkpoints hold, the latest at entry 7" in capsys.readouterr().out
    assert verify(url, checkpoints, rotated.public) == 1  # the old key's checkpoint needs the old public key


def test_keygen_never_overwrites_a_key(key: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    before = key.private.read_bytes()
    assert main(["audit", "keygen", "--private-key", str(key.private), "--public-key", str(key.public)]) == 1
    assert "exists; a key is never overwritten" in capsys.readouterr().err
    assert key.private.read_bytes() == before and key.private.stat().st_mode & 0o777 == 0o600


def test_the_service_writes_checkpoints_every_n_entries_and_at_shutdown(
    url: str, key: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints = tmp_path / "served.jsonl"
    config = ServiceConfig(
        database_url=url,
        link_secret_file=tmp_path / "secret",
        checkpoint_key_file=key.private,
        checkpoint_file=checkpoints,
        checkpoint_every=2,
        checkpoint_interval_s=3600,
    )
    audit = AuditStore(url)
    body = example("order-sign-new-start-moderate-renal.json")
    with TestClient(create_app(config, audit=audit, clock=examples_clock)) as client:
        for n in range(3):
            assert client.post(service_for(body), json=dict(body, hookInstance=f"h-{n}")).status_code == 200
        during = wait_for_checkpoint(checkpoints)  # the second entry woke the writer; the interval is an hour
    assert during.seq >= 2
    written = read_checkpoints(checkpoints)
    assert (written[-1].seq, written[-1].head) == audit.head() == (3, written[-1].head)  # and one at shutdown
    audit.append("decision", "after", "imatinib-order-sign", {})
    audit.dispose()
    assert verify(url, checkpoints, key.public) == 0
    assert "4 entries" in capsys.readouterr().out


def wait_for_checkpoint(path: Path) -> Checkpoint:
    deadline = time.monotonic() + 30
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    return read_checkpoints(path)[0]


def test_a_checkpoint_is_written_when_the_interval_has_passed_and_the_head_moved(
    url: str, key: Keys, tmp_path: Path
) -> None:
    store = AuditStore(url)
    path = tmp_path / "timed.jsonl"
    store.checkpoints = Checkpoints(store.head, CheckpointSigner.from_file(key.private), path, interval_s=0.05)
    store.append("decision", "h", "s", {})
    assert wait_for_checkpoint(path).seq == 1
    store.dispose()


def test_the_service_writes_a_last_checkpoint_at_shutdown(url: str, key: Keys, tmp_path: Path) -> None:
    checkpoints = tmp_path / "served.jsonl"
    config = ServiceConfig(
        database_url=url, link_secret_file=tmp_path / "secret", checkpoint_key_file=key.private,
        checkpoint_file=checkpoints, checkpoint_interval_s=3600,
    )  # fmt: skip
    audit = AuditStore(url)
    body = example("order-sign-new-start-moderate-renal.json")
    with TestClient(create_app(config, audit=audit, clock=examples_clock)) as client:
        assert client.post(service_for(body), json=body).status_code == 200
        assert not checkpoints.exists()  # 1 of 1000 entries, an hour's interval: nothing yet
    assert [(c.seq, c.head) for c in read_checkpoints(checkpoints)] == [audit.head()]
    audit.dispose()


def test_a_checkpoint_writer_that_cannot_write_does_not_stop_the_log(url: str, key: Keys, tmp_path: Path) -> None:
    store = AuditStore(url)
    blocked = tmp_path / "file"
    blocked.write_text("")
    store.checkpoints = Checkpoints(store.head, CheckpointSigner.from_file(key.private), blocked / "x", every=1)
    assert store.append("decision", "h", "s", {}) == 1
    store.dispose()  # the failed last checkpoint is logged, not raised
    assert main(["audit", "--db", url, "verify"]) == 0


# --- an audit database written before client scoping -------------------------------------------------------


def test_a_log_from_the_previous_version_opens_verifies_and_grows(tmp_path: Path, key: Keys) -> None:
    """tests/service/data/audit-before-client-scoping.sqlite3 was written by main at 4d98cdb (two service
    decisions with cards, and a feedback). Verify reads it as it is; the service adds the new columns."""
    path = tmp_path / "old.sqlite3"
    shutil.copy(LEGACY, path)
    url = f"sqlite:///{path}"
    assert main(["audit", "--db", url, "verify"]) == 0
    assert "client" not in {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(audit_entries)")}
    store = AuditStore(url)
    old = store.decision("1a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c06")
    assert old is not None and old["client"] is None and store.card(old["payload"]["cards"][0]["uuid"]) is not None
    store.append("decision", "new", "imatinib-order-sign", {}, ("new-card",), client="https://ehr.example")
    store.dispose()
    checkpoints = tmp_path / "c.jsonl"
    assert checkpoint(url, key, checkpoints) == 0
    assert verify(url, checkpoints, key.public) == 0
    reopened = AuditStore(url, create=False)
    assert reopened.card("new-card", "https://ehr.example") == ("new", 4) and reopened.card("new-card", "") is None
    reopened.dispose()
    assert json.loads(checkpoints.read_text())["seq"] == 4
