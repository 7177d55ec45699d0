"""`audit show` as a summary, `audit export --until --format csv --deidentify`, `audit verify --file EXPORT`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cds.audit import AuditStore
from cds.audit.export import CSV_COLUMNS
from cds.cli.main import main

HOOK = "6f1c2a9e-0b7d-4e55-9c1a-3d2b1e0f9a11"
CARD = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
SUGGESTION = "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c"
DECISION: dict[str, Any] = {
    "service": "imatinib-order-sign",
    "hook": "order-sign",
    "received": "2026-11-25T12:00:00+00:00",
    "client": {"iss": "https://ehr.example/cds", "tenant": "t1", "jti": "jti-0042"},
    "request_digest": "ab" * 32,
    "status": "ok",
    "http_status": 200,
    "latency_ms": 41.5,
    "patient_ref": "pt-renal-7",
    "ruleset": {"version": "renal@1.4.0", "digest": "cd" * 32},
    "facts": {"renal.crcl": 35.2, "regimen.new_start": True, "patient.weight": 70.0},
    "fact_sources": {
        "renal.crcl": ["Observation/lab-creat-9 (2026-11-24T08:00:00+00:00)", "Patient/pt-renal-7 (undated)"],
        "regimen.new_start": ["MedicationRequest/draft-3 (2026-11-25T11:58:00+00:00)"],
    },
    "fired": [
        {
            "rule": "IMA-RENAL-020",
            "version": "1.4.0",
            "ruleset": "renal",
            "title": "Moderate renal impairment at a new start - 50% of the starting dose",
            "facts_used": {"renal.crcl": 35.2, "regimen.new_start": True},
            "card": "dose",
        }
    ],
    "dose": {"action": "change", "daily_mg": 200.0, "interval_h": 24, "steps": ["50% of 400 mg (IMA-RENAL-020)"]},
    "warnings": ["prefetch.procedures was not sent: not considered"],
    "cards": [
        {
            "uuid": CARD,
            "summary": "Moderate renal impairment: start at 200 mg/day",
            "indicator": "warning",
            "links": [{"url": f"https://cds.example/explain/{HOOK}?token=1.abc", "label": "Why"}],
            "suggestions": [
                {
                    "uuid": SUGGESTION,
                    "label": "Change to 200 mg once daily: 2 x 100 mg tablets",
                    "actions": [
                        {
                            "type": "update",
                            "resource": {"resourceType": "MedicationRequest", "id": "draft-3",
                                         "subject": {"reference": "Patient/pt-renal-7"}},
                        }
                    ],
                }
            ],
        }
    ],
    "inputs": {"request": {"hookInstance": HOOK, "context": {"patientId": "pt-renal-7"}}, "record": {"x": 1}},
}  # fmt: skip
FEEDBACK = {
    "service": "imatinib-order-sign",
    "decision_seq": 1,
    "feedback": {
        "card": CARD,
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-25T12:05:00Z",
        "overrideReason": {"reason": {"code": "clinical-judgement"}, "userComment": "Mrs Example prefers 300"},
    },
}
IDENTIFIERS = (HOOK, CARD, SUGGESTION, "pt-renal-7", "lab-creat-9", "draft-3", "jti-0042", "Mrs Example", "ab" * 32)


@pytest.fixture()
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    store = AuditStore(url)
    store.append(
        "decision", HOOK, "imatinib-order-sign", DECISION, card_uuids=(CARD,), client="https://ehr.example/cds"
    )
    store.append("feedback", HOOK, "imatinib-order-sign", FEEDBACK, client="https://ehr.example/cds")
    store.append("decision", "hook-2", "imatinib-patient-view", {"status": "ok", "cards": []})
    store.dispose()
    return url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_summarises_advice_facts_rules_feedback_and_chain(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--db", database, "show", HOOK)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"Decision {HOOK} (imatinib-order-sign)"
    assert "  patient   pt-renal-7" in lines
    assert f"  rule set  version renal@1.4.0, digest {'cd' * 32}" in lines
    assert "  [warning] Moderate renal impairment: start at 200 mg/day" in lines
    assert "      suggestion: Change to 200 mg once daily: 2 x 100 mg tablets" in lines
    assert "  Dose: change to 200 mg every 24 h (200 mg/day)" in lines
    rule = "  IMA-RENAL-020 v1.4.0 (renal) Moderate renal impairment at a new start - 50% of the starting dose"
    assert f"{rule}  -> card dose" in lines
    crcl = next(line for line in lines if line.strip().startswith("renal.crcl"))
    assert crcl.split()[1] == "35.2" and "Observation/lab-creat-9 (2026-11-24T08:00:00+00:00)" in crcl
    assert "Facts the fired rules used (2 of 3 recorded):" in lines
    assert any("overridden at 2026-11-25T12:05:00Z" in line and "reason clinical-judgement" in line for line in lines)
    assert "Audit chain: entry 1 of 3, written" in out
    assert len(lines) < 40 and "{" not in out


def test_show_json_prints_the_record(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--db", database, "show", HOOK, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["seq"] == 1 and shown["payload"]["inputs"]["record"] == {"x": 1}
    assert [f["payload"]["feedback"]["outcome"] for f in shown["feedback"]] == ["overridden"]


def set_times(url: str, times: dict[int, str]) -> None:
    """Move entries in time (the hash then no longer holds; verify is not what these tests check)."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        for seq, stamp in times.items():
            db.execute("UPDATE audit_entries SET created_at = ? WHERE seq = ?", (stamp, seq))


def test_export_since_until_is_the_unbroken_run_between(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    set_times(database, {1: "2026-11-01T00:00:00.000000+00:00", 2: "2026-11-10T00:00:00.000000+00:00",
                         3: "2026-11-05T00:00:00.000000+00:00"})  # fmt: skip
    code, out, _ = run(capsys, "--db", database, "export", "--until", "2026-11-06T00:00:00Z")
    assert code == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2, 3]  # 2 lies between
    code, out, _ = run(capsys, "--db", database, "export", "--since", "2026-11-02T00:00:00Z", "--until",
                       "2026-11-06T00:00:00Z")  # fmt: skip
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [3]
    code, out, _ = run(capsys, "--db", database, "export", "--until", "2026-10-01T00:00:00Z")
    assert code == 0 and out == ""
    code, _, err = run(capsys, "--db", database, "export", "--since", "2026-11-06T00:00:00Z", "--until", "2026-11-01")
    assert code == 2 and "--until" in err


def test_export_csv_has_readable_columns_and_the_hashed_fields(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--db", database, "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and out.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [r["seq"] for r in rows] == ["1", "2", "3"]
    first = rows[0]
    assert first["patient_ref"] == "pt-renal-7" and first["fired_rules"] == "IMA-RENAL-020@1.4.0"
    assert first["card_summaries"] == "Moderate renal impairment: start at 200 mg/day"
    assert rows[1]["feedback_outcome"] == "overridden" and first["deidentified"] == "no"
    assert json.loads(first["payload"]) == DECISION and len(first["entry_hash"]) == 64


def deidentified(capsys: pytest.CaptureFixture[str], database: str, *extra: str) -> list[dict[str, Any]]:
    code, out, _ = run(capsys, "--db", database, "export", "--deidentify", *extra)
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def test_deidentify_removes_or_pseudonymises_every_identifier(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"k" * 32)
    entries = deidentified(capsys, database, "--pseudonym-key", str(key))
    text = json.dumps(entries)
    for identifier in IDENTIFIERS:
        assert identifier not in text, identifier
    decision, feedback = entries[0], entries[1]
    assert all(e["deidentified"] is True for e in entries)
    assert "inputs" not in decision["payload"] and "links" not in decision["payload"]["cards"][0]
    action = decision["payload"]["cards"][0]["suggestions"][0]["actions"][0]
    assert action == {"type": "update", "resource": {"resourceType": "MedicationRequest"}}
    assert "userComment" not in feedback["payload"]["feedback"]["overrideReason"]
    # one pseudonym per identifier, wherever it appears: feedback still meets its card, the patient its references
    card = decision["payload"]["cards"][0]["uuid"]
    assert card.startswith("uuid-") and feedback["payload"]["feedback"]["card"] == card
    assert json.loads(decision["cards"]) == [card]
    assert decision["hook_instance"] == feedback["hook_instance"] and decision["hook_instance"].startswith("hook-")
    patient = decision["payload"]["patient_ref"]
    assert f"Patient/{patient} (undated)" in decision["payload"]["fact_sources"]["renal.crcl"]
    # what stays: times, facts, rules, card text, dose, the client's issuer, the entry hashes
    assert decision["payload"]["facts"] == DECISION["facts"] and decision["payload"]["fired"] == DECISION["fired"]
    assert decision["client"] == "https://ehr.example/cds" and len(decision["entry_hash"]) == 64
    # the same key gives the same pseudonyms; without one, a one-off key gives others
    assert deidentified(capsys, database, "--pseudonym-key", str(key)) == entries
    code, out, err = run(capsys, "--db", database, "export", "--deidentify")
    assert json.loads(out.splitlines()[0])["hook_instance"] != decision["hook_instance"]
    assert "one-off key" in err


def test_deidentify_refuses_a_short_key_and_a_key_without_it(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "short.key"
    key.write_bytes(b"short")
    code, _, err = run(capsys, "--db", database, "export", "--deidentify", "--pseudonym-key", str(key))
    assert code == 1 and "at least 32 bytes" in err
    code, _, err = run(capsys, "--db", database, "export", "--pseudonym-key", str(key))
    assert code == 2 and "only used with --deidentify" in err


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_verify_file_recomputes_the_slice(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    export = tmp_path / f"slice.{form}"
    export.write_text(run(capsys, "--db", database, "export", "--format", form)[1])
    code, out, _ = run(capsys, "verify", "--file", str(export))
    assert code == 0
    assert out.splitlines()[0].startswith(f"export {export}: entries 1-3 (3, written ")
    assert out.splitlines()[1].startswith("not anchored: give --checkpoints and --public-key, or --db")
    code, out, _ = run(capsys, "verify", "--file", str(export), "--db", database)
    assert code == 0 and "matches the database: entries 1-3 have the same hashes there (its head: entry 3" in out
    exported = export.read_text()
    if form == "csv":  # a readable column must agree with the payload the hash covers
        export.write_text(exported.replace(",pt-renal-7,", ",pt-renal-8,", 1))
        code, _, err = run(capsys, "verify", "--file", str(export))
        assert code == 1 and f"{export}:2: column patient_ref of entry 1 disagrees with the entry's payload" in err
    export.write_text(exported.replace("pt-renal-7", "pt-renal-8"))
    code, out, _ = run(capsys, "verify", "--file", str(export))
    assert code == 1
    assert out.strip() == f"export {export} BROKEN at entry 1: its content was changed after it was written " \
        "(0 entries before it verify)"  # fmt: skip


def test_verify_file_finds_a_missing_line_and_another_log(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = run(capsys, "--db", database, "export")[1].splitlines()
    export = tmp_path / "slice.jsonl"
    export.write_text(lines[0] + "\n" + lines[2] + "\n")
    code, out, _ = run(capsys, "verify", "--file", str(export))
    assert code == 1 and "BROKEN at entry 3: expected entry 2 but found 3" in out
    export.write_text("\n".join(lines[1:]) + "\n")  # a slice from the middle verifies on its own
    assert run(capsys, "verify", "--file", str(export))[0] == 0
    other = f"sqlite:///{tmp_path}/other.sqlite3"
    store = AuditStore(other)
    store.append("decision", "hook-9", "imatinib-order-sign", {"status": "ok", "cards": []})
    store.append("decision", "hook-10", "imatinib-order-sign", {"status": "ok", "cards": []})
    store.dispose()
    code, out, _ = run(capsys, "verify", "--file", str(export), "--db", other)
    assert code == 1 and "does NOT match the database: entry 2 has another hash there" in out


def test_verify_file_refuses_a_deidentified_export(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for form in ("jsonl", "csv"):
        export = tmp_path / f"deidentified.{form}"
        export.write_text(run(capsys, "--db", database, "export", "--deidentify", "--format", form)[1])
        code, _, err = run(capsys, "verify", "--file", str(export))
        assert code == 1
        assert "this export is de-identified" in err and "no hash can be recomputed" in err


def test_verify_file_against_signed_checkpoints(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public, marks = tmp_path / "k.pem", tmp_path / "k.pub", tmp_path / "checkpoints.jsonl"
    assert main(["audit", "keygen", "--private-key", str(private), "--public-key", str(public)]) == 0
    assert main(["audit", "--db", database, "checkpoint", "--key", str(private), "--checkpoints", str(marks)]) == 0
    store = AuditStore(database)
    store.append("decision", "hook-4", "imatinib-patient-view", {"status": "ok", "cards": []})
    store.dispose()
    capsys.readouterr()
    lines = run(capsys, "--db", database, "export")[1].splitlines()
    export = tmp_path / "slice.jsonl"
    export.write_text("\n".join(lines[1:]) + "\n")  # entries 2-4; the checkpoint is at 3
    anchor = ["--checkpoints", str(marks), "--public-key", str(public)]
    code, out, _ = run(capsys, "verify", "--file", str(export), *anchor)
    assert code == 0
    assert out.splitlines()[1] == (
        "anchored: the signed checkpoint at entry 3 holds, and so every entry of the slice up to it; "
        "entry 4 follows it, chained to it only"
    )
    export.write_text(lines[3] + "\n")  # entry 4 alone: no checkpoint inside
    code, out, _ = run(capsys, "verify", "--file", str(export), *anchor)
    assert code == 1 and "NOT anchored: none of the 1 signed checkpoints is at an entry in 4-4" in out
