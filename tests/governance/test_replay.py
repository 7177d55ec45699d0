"""`audit replay`: recorded decisions recomputed with the same rules give the same advice; a changed threshold
changes exactly the decisions it should; the report's JSON, text and HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds.audit import AuditStore
from cds.cli.main import main
from cds.governance.advice import recorded_advice
from cds.governance.replay import replay, rerun_entry
from cds.pipeline import Pipeline
from tests.conftest import RULES
from tests.governance.conftest import candidate

# the CML target at 600 instead of 1000 ng/mL, with the rules' boundary tests moved with it (E010)
CML_TARGET_600 = {
    "policy.yaml": [("value: 1000 ng/mL", "value: 600 ng/mL")],
    "imatinib/trough.yaml": [(" 1000 ng/mL", " 600 ng/mL"), (" 999 ng/mL", " 599 ng/mL"), (" 990 ng/mL", " 590 ng/mL")],
}


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(list(argv)) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def without_links(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in card.items() if k != "links"} for card in cards]


def test_same_rules_reproduce_every_recorded_decision_exactly(recorded: tuple[str, int]) -> None:
    url, answered = recorded
    assert answered > 300
    pipeline, store = Pipeline(RULES), AuditStore(url, create=False)
    replayed = 0
    try:
        for entry in store.export(kind="decision"):
            result = rerun_entry(pipeline, entry)
            assert result.outcome is not None, result.problem
            stored = entry["payload"]
            # stricter than the report's comparison: every card as sent (ids too), every fact, the dose
            assert without_links(result.outcome.cards) == without_links(stored["cards"]), entry["hook_instance"]
            assert json.loads(json.dumps(dict(result.outcome.decision.facts))) == stored["facts"]
            assert result.differs == []
            replayed += 1
    finally:
        store.dispose()
    assert replayed == answered


def test_replay_command_with_the_same_rules_reports_no_change(
    recorded: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, answered = recorded
    report = cli_json(capsys, "audit", "replay", "--db", url, "--rules", str(RULES), "--json")
    assert (report["decisions"], report["changed"], report["not_replayable"], report["changes"]) == (answered, 0, 0, [])
    assert all(n["fired_before"] == n["fired_after"] for n in report["by_rule"].values())
    assert report["by_rule"]["IMA-TROUGH-020"]["fired_before"] > 0


def test_mapping_the_recorded_request_again_gives_the_recorded_record(recorded: tuple[str, int]) -> None:
    """Differential: the replay's shortcuts (the recorded record and PK step) and mapping the recorded request and
    estimating anew agree."""
    url, _ = recorded
    pipeline, store = Pipeline(RULES), AuditStore(url, create=False)
    try:
        for entry in store.export(kind="decision"):
            inputs = dict(entry["payload"]["inputs"])
            shortcut = pipeline.rerun(inputs)
            del inputs["record"]
            mapped = pipeline.rerun(inputs)
            assert mapped.record == shortcut.record, entry["hook_instance"]
            assert mapped.decision.facts == shortcut.decision.facts
            assert mapped.cards == shortcut.cards
            if inputs["pk"] is not None:
                assert shortcut.pk.estimate is None and mapped.pk.estimate is not None  # the shortcut was taken
    finally:
        store.dispose()


def test_a_lower_cml_target_changes_the_decisions_between_the_two_targets(
    recorded: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, answered = recorded
    if not url.startswith("sqlite"):
        pytest.skip("one backend is enough for the clinical expectation")
    rules = candidate(tmp_path, CML_TARGET_600)
    report = cli_json(capsys, "audit", "replay", "--db", url, "--rules", str(rules), "--json")
    store = AuditStore(url, create=False)
    try:
        payloads = {e["hook_instance"]: e["payload"] for e in store.export(kind="decision")}
    finally:
        store.dispose()
    # expected from the recorded facts alone: CML troughs in [600, 1000) were below target and no longer are
    between = {
        hook
        for hook, p in payloads.items()
        if p["facts"].get("dx.indication") == "CML"
        and 600 <= p["facts"].get("tdm.trough", -1) < 1000
        and "IMA-TROUGH-020" in recorded_advice(p).fired
    }
    assert between, "the recorded decisions must include a CML trough between the targets"
    lost = {
        c["hookInstance"]
        for c in report["changes"]
        if "IMA-TROUGH-020" in set(c["before"]["fired"]) - set(c["after"]["fired"])
    }
    assert lost == between
    changed = {c["hookInstance"] for c in report["changes"]}
    assert all(payloads[h]["facts"].get("dx.indication") == "CML" for h in changed)  # GIST advice untouched
    trough_020 = report["by_rule"]["IMA-TROUGH-020"]
    assert trough_020["fired_after"] == trough_020["fired_before"] - len(between)
    assert report["decisions"] == answered and report["changed"] == len(changed) >= len(between)


def test_html_report_groups_changes_by_rule_with_both_sides(
    recorded: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = recorded
    if not url.startswith("sqlite"):
        pytest.skip("rendering does not depend on the backend")
    rules, page = candidate(tmp_path, CML_TARGET_600), tmp_path / "replay.html"
    assert main(["audit", "replay", "--db", url, "--rules", str(rules), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert "would change" in text and "IMA-TROUGH-020" in text
    html = page.read_text(encoding="utf-8")
    assert 'id="rule-IMA-TROUGH-020"' in html
    assert html.count('<div class="side">') % 2 == 0 and "Recorded" in html and "Candidate" in html
    assert "CML trough below target" in html


def test_since_limits_the_window_and_bad_arguments_are_one_line_errors(
    recorded: tuple[str, int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, _ = recorded
    if not url.startswith("sqlite"):
        pytest.skip("argument handling does not depend on the backend")
    later = cli_json(
        capsys, "audit", "replay", "--db", url, "--rules", str(RULES), "--since", "2999-01-01T00:00:00Z", "--json"
    )
    assert (later["decisions"], later["changed"]) == (0, 0)
    assert main(["audit", "replay", "--db", url, "--rules", str(RULES), "--since", "yesterday"]) == 2
    assert main(["audit", "replay", "--db", f"sqlite:///{tmp_path}/none.sqlite3", "--rules", str(RULES)]) == 1
    assert main(["audit", "replay", "--db", url, "--rules", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("imatinib-cds: ") for line in err)


def test_decisions_recorded_before_inputs_were_kept_are_counted_not_guessed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    store = AuditStore(url)
    store.append("decision", "old-1", "imatinib-order-sign", {"status": "ok", "dose": {"action": "keep"}})
    store.append("decision", "refused-1", "imatinib-order-sign", {"status": "http-400"})
    try:
        results = list(replay(store, Pipeline(RULES)))
    finally:
        store.dispose()
    assert [(r.hook_instance, r.after, r.problem) for r in results] == [
        ("old-1", None, "recorded before decisions kept their inputs")
    ]
