"""Guideline map checks (E019, E020) and the trace matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli.main import main
from cds.engine.ruleset import RuleSet, load_rules
from cds.engine.trace import check_trace, read_guideline_map, render_trace_markdown, trace_rows
from tests.rules.planted import DOWN, UP, root_with

SOURCES = "version: 1\nsources:\n  LOCAL: {title: Local policy}\nrecommendations:\n"


def _codes(root: Path) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in check_trace(load_rules(root))]


def test_shipped_map_traces_every_rule(rule_set: RuleSet) -> None:
    assert check_trace(rule_set) == []


def test_every_shipped_recommendation_has_rules_or_a_reason(rule_set: RuleSet) -> None:
    gmap, problems = read_guideline_map(Path(rule_set.root) / "guideline-map.yaml")
    assert gmap is not None and not problems
    assert all(rec.rules or rec.not_implemented for rec in gmap.recommendations)
    cited = {rid for rec in gmap.recommendations for rid in rec.rules}
    assert cited == {rule.id for rule in rule_set.rules}


def test_rule_without_recommendation_is_e019(tmp_path: Path) -> None:
    text = SOURCES + "  - {id: R1, source: LOCAL, statement: up, rules: [PL-UP-001]}\n"
    codes = _codes(root_with(tmp_path, UP, DOWN, map_text=text))
    assert codes == [("E019", f"PL-DOWN-001 cites no recommendation of {tmp_path / 'root' / 'guideline-map.yaml'}")]


def test_recommendation_without_rules_or_reason_is_e020(tmp_path: Path) -> None:
    text = SOURCES + (
        "  - {id: R1, source: LOCAL, statement: up, rules: [PL-UP-001]}\n"
        "  - {id: R2, source: LOCAL, statement: forgotten}\n"
        "  - {id: R3, source: LOCAL, statement: skipped, not_implemented: out of scope}\n"
    )
    assert _codes(root_with(tmp_path, UP, map_text=text)) == [
        ("E020", "R2 has neither rules nor a not_implemented reason")
    ]


def test_recommendation_naming_an_unknown_rule_is_e020(tmp_path: Path) -> None:
    text = SOURCES + "  - {id: R1, source: LOCAL, statement: up, rules: [PL-UP-001, PL-GONE-001]}\n"
    assert _codes(root_with(tmp_path, UP, map_text=text)) == [("E020", "R1 names unknown rule PL-GONE-001")]


def test_missing_map_is_e020(tmp_path: Path) -> None:
    (code, message), *_ = _codes(root_with(tmp_path, UP))
    assert code == "E020" and "not found" in message


def test_matrix_lists_recommendation_rules_and_tests(tmp_path: Path) -> None:
    text = SOURCES + (
        "  - {id: R1, source: LOCAL, statement: move the dose, rules: [PL-UP-001, PL-DOWN-001]}\n"
        "  - {id: R2, source: LOCAL, statement: skipped, not_implemented: out of scope}\n"
    )
    rule_set = load_rules(root_with(tmp_path, UP, DOWN, map_text=text))
    gmap, _ = read_guideline_map(Path(rule_set.root) / "guideline-map.yaml")
    assert gmap is not None
    assert [(r.recommendation.id, r.rule.id if r.rule else None) for r in trace_rows(rule_set, gmap)] == [
        ("R1", "PL-UP-001"),
        ("R1", "PL-DOWN-001"),
        ("R2", None),
    ]
    markdown = render_trace_markdown(rule_set, gmap)
    assert (
        "| **R1** move the dose | Local policy |  | PL-UP-001 (planted PL-UP-001) | 2: crcl 60; crcl 59 |" in markdown
    )
    assert "*not implemented* | out of scope |" in markdown


def test_trace_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], rules_dir: Path) -> None:
    assert main(["rules", "trace", str(rules_dir)]) == 0
    assert "| Recommendation | Source | Level | Rule | Tests |" in capsys.readouterr().out
    text = SOURCES + "  - {id: R1, source: LOCAL, statement: up, rules: [PL-UP-001]}\n"
    assert main(["rules", "trace", str(root_with(tmp_path, UP, DOWN, map_text=text))]) == 1
    assert "E019" in capsys.readouterr().out
