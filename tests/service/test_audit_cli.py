"""`imatinib-cds audit verify | show | export` as an auditor uses them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cds.audit import AuditStore
from cds.cli.main import main


@pytest.fixture()
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    store = AuditStore(url)
    store.append("decision", "hook-1", "imatinib-order-sign", {"status": "ok", "cards": []})
    store.append("feedback", "hook-1", "imatinib-order-sign", {"feedback": {"card": "c1", "outcome": "overridden"}})
    store.append("decision", "hook-2", "imatinib-patient-view", {"status": "ok", "cards": []})
    store.dispose()
    return url


def test_verify_reports_an_intact_chain(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", database, "verify"]) == 0
    assert capsys.readouterr().out.strip() == "audit chain intact: 3 entries"


def test_verify_names_the_first_broken_entry(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(database.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM audit_entries WHERE seq = 2")
    assert main(["audit", "--db", database, "verify"]) == 1
    assert capsys.readouterr().out.startswith("audit chain BROKEN at entry 3: expected entry 2 but found 3")


def test_show_json_prints_the_decision_with_its_feedback(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", database, "show", "hook-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["seq"] == 1 and shown["payload"]["status"] == "ok"
    assert [f["payload"]["feedback"]["outcome"] for f in shown["feedback"]] == ["overridden"]


def test_show_unknown_hook_instance_is_one_line(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", database, "show", "nope"]) == 1
    assert capsys.readouterr().err.strip() == "imatinib-cds: no decision recorded for hookInstance nope"


def test_export_writes_json_lines_since_a_time(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", database, "export"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3] and all(len(e["entry_hash"]) == 64 for e in lines)
    assert main(["audit", "--db", database, "export", "--since", "2999-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "--db", database, "export", "--since", "last week"]) == 2
