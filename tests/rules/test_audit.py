"""The static audit finds planted unreachable rules and conflicts, and nothing unexplained in the shipped rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli.main import main
from cds.engine.ruleset import RuleSet, load_rules
from cds.engine.static_audit import AuditReport, audit_rules, dnf
from tests.rules.planted import (
    CONTRADICTION,
    DERIVES_FALSE,
    DOWN,
    DOWN_EXCLUSIVE,
    NEVER_DERIVED,
    OUT_OF_RANGE,
    PRESENT_AND_MISSING,
    UP,
    WARN,
    WARN_AGAIN,
    WARN_HIGH,
    root_with,
)


def _kinds(report: AuditReport, kind: str) -> set[str]:
    return {f.subject for f in report.findings if f.kind == kind}


@pytest.mark.parametrize(
    "planted, rule_id",
    [
        pytest.param(CONTRADICTION, "PL-DEAD-001", id="contradicting-thresholds"),
        pytest.param(OUT_OF_RANGE, "PL-DEAD-002", id="outside-plausible-range"),
        pytest.param(PRESENT_AND_MISSING, "PL-DEAD-004", id="present-and-missing"),
    ],
)
def test_planted_unreachable_rule_is_found(tmp_path: Path, planted: str, rule_id: str) -> None:
    report = audit_rules(load_rules(root_with(tmp_path, UP, planted)), check_pairs=False)
    found = [f for f in report.findings if f.kind == "unreachable"]
    assert [f.subject for f in found] == [rule_id]
    assert "can never fire" in found[0].message
    assert found[0] in report.unexplained


def test_a_derived_value_no_rule_derives_is_unreachable(tmp_path: Path) -> None:
    report = audit_rules(load_rules(root_with(tmp_path, DERIVES_FALSE, NEVER_DERIVED)), check_pairs=False)
    assert _kinds(report, "unreachable") == {"PL-DEAD-003"}


def test_planted_conflict_is_found_with_an_example(tmp_path: Path) -> None:
    rule_set = load_rules(root_with(tmp_path, UP, DOWN))
    report = audit_rules(rule_set)
    (conflict,) = [f for f in report.findings if f.kind == "conflict"]
    assert conflict.subject == "PL-UP-001 + PL-DOWN-001"
    assert "an increase against a decrease" in conflict.message
    assert float(conflict.example["renal.crcl"]) > 80  # a document on which both fire
    assert conflict in report.unexplained


def test_exclusive_opposite_rules_are_not_a_conflict(tmp_path: Path) -> None:
    report = audit_rules(load_rules(root_with(tmp_path, UP, DOWN_EXCLUSIVE)))
    assert report.pairs_checked == 1
    assert not _kinds(report, "conflict")
    assert not report.unexplained


def test_an_audit_note_naming_the_other_rule_explains_a_conflict(tmp_path: Path) -> None:
    noted = DOWN.replace(
        "    when:", "    audit_note: Intended - PL-UP-001 never sees CrCl above 80 in practice.\n    when:"
    )
    report = audit_rules(load_rules(root_with(tmp_path, UP, noted)))
    (conflict,) = [f for f in report.findings if f.kind == "conflict"]
    assert conflict.explained and "PL-UP-001" in conflict.explanation
    assert not report.unexplained


def test_a_note_that_does_not_name_the_other_rule_does_not_explain(tmp_path: Path) -> None:
    noted = DOWN.replace("    when:", "    audit_note: looked at it.\n    when:")
    report = audit_rules(load_rules(root_with(tmp_path, UP, noted)))
    assert [f.subject for f in report.unexplained] == ["PL-UP-001 + PL-DOWN-001"]


def test_unused_codes_of_read_facts_are_reported(tmp_path: Path) -> None:
    report = audit_rules(load_rules(root_with(tmp_path, PRESENT_AND_MISSING)), check_pairs=False)
    assert "renal.crcl_method=cockcroft-gault" in _kinds(report, "unused-code")
    assert "renal.crcl_method=measured" not in _kinds(report, "unused-code")


def test_value_set_whose_fact_no_rule_reads_is_reported(tmp_path: Path) -> None:
    root = root_with(tmp_path, UP)
    (root / "terminology").mkdir()
    sets = "value_sets:\n  grapefruit: {description: intake, members: []}\n  topical-forms: {members: []}\n"
    (root / "terminology" / "diet.yaml").write_text(sets, encoding="utf-8")
    report = audit_rules(load_rules(root), check_pairs=False)
    assert _kinds(report, "unused-value-set") == {"grapefruit"}
    assert any("topical-forms" in note for note in report.notes)


def test_dnf_expands_nested_conditions(rule_set: RuleSet) -> None:
    conjuncts = dnf(rule_set.rule("IMA-HEP-003").when)
    assert conjuncts is not None and len(conjuncts) == 2


def test_audit_command_exits_1_on_unexplained_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "audit", str(root_with(tmp_path, UP, CONTRADICTION))]) == 1
    out = capsys.readouterr().out
    assert "**unreachable** PL-DEAD-001" in out


def test_shipped_rules_have_no_unexplained_findings(rule_set: RuleSet) -> None:
    report = audit_rules(rule_set)
    assert not report.unexplained, [f.message for f in report.unexplained]
    assert not _kinds(report, "unreachable")
    # the composer's order resolves the conflicts the issue names
    resolved = {(a, b) for a, b, _ in report.resolved_by_composer}
    assert ("IMA-HTX-010", "IMA-TROUGH-050") in resolved
    assert ("IMA-CYP-010", "IMA-RENAL-022") in resolved


def test_a_rule_repeating_another_is_a_probable_duplicate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "audit", str(root_with(tmp_path, WARN, WARN_AGAIN, WARN_HIGH))]) == 1
    lines = capsys.readouterr().out.splitlines()
    found = [line for line in lines if "probable-duplicate" in line]
    assert found == [
        f"- **probable-duplicate** PL-WARN-001 + PL-WARN-002 ({tmp_path}/root/imatinib/planted.yaml:26): PL-WARN-002 "
        "reads the same facts as PL-WARN-001 (renal.crcl), acts the same way (warning dose card) and both can fire "
        "together: merge them, or name the other id in an audit_note"
    ]
