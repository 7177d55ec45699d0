"""What a pharmacist reads when a rule file is wrong: plain words at the line of the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli.main import main
from cds.engine.spelling import closest, edit_distance
from tests.conftest import make_rules_root

HEADER = """\
ruleset:
  id: msg
  version: 1.0.0
  status: active
  title: Message example
  purpose: Linter message fixture
  owner: tests
  authors: [{name: tests, role: fixture}]
  clinical_reviewers: []
  approved: {by: tests, date: 2026-11-25}
  effective_from: 2026-11-25
  review_by: 2027-11-25
  jurisdiction: US
  hit_policy: collect
  change_log: [{version: 1.0.0, date: 2026-11-25, change: fixture}]
rules:
  - id: IMA-X-001
    title: Strong inhibitor
    hooks: [order-sign]
    evidence: [{citation: fixture, level: label}]
    when: {eq: [comed.strong_cyp3a4_inhibitor, true]}
"""
THEN = """\
    then:
      card:
        indicator: warning
        topic: interaction
        summary: A strong CYP3A4 inhibitor is ordered
"""
TESTS = """\
    tests:
      - {name: t, facts: {comed.strong_cyp3a4_inhibitor: true}, expect: {fired: [IMA-X-001]}}
"""


def check_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str
) -> list[str]:
    make_rules_root(tmp_path / "r", ("msg.yaml", text))
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "check", "r"]) == 1
    return [line for line in capsys.readouterr().out.splitlines() if not line.startswith("    fix:")]


def test_the_shared_fixture_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(make_rules_root(tmp_path, ("msg.yaml", HEADER + THEN + TESTS)))]) == 0


def test_a_card_outside_then_names_the_key_line_and_where_it_belongs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outdented = THEN.replace("    then:\n", "    then:\n      dose: {withhold: true}\n").replace("  card:", "card:")
    lines = check_lines(tmp_path, capsys, monkeypatch, HEADER + outdented + TESTS)
    assert lines == [
        "r/imatinib/msg.yaml:24:5 E002 `card` is not a rule field; did you mean to indent it under `then:` at line 22?",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_a_misspelt_field_suggests_the_nearest_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (HEADER + THEN + TESTS).replace("    title: Strong", "    titel: Strong")
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        "r/imatinib/msg.yaml:17:5 E002 rule IMA-X-001 needs `title:`",
        "r/imatinib/msg.yaml:18:5 E002 `titel` is not a rule field; did you mean `title`?",
        "not loaded: 2 error(s), 0 warning(s)",
    ]


def test_a_wrong_value_lists_the_allowed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (HEADER + THEN + TESTS).replace("indicator: warning", "indicator: warn")
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        "r/imatinib/msg.yaml:24:9 E002 `indicator` cannot be `warn`; use one of info, warning, critical",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_a_tab_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text = (HEADER + THEN + TESTS).replace("        topic:", "\ttopic:")
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        "r/imatinib/msg.yaml:25:1 E001 tabs are not allowed, use spaces to indent",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_a_key_indented_wrongly_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (HEADER + THEN + TESTS).replace("        topic:", "       topic:")
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        "r/imatinib/msg.yaml:25:8 E001 `topic: interaction` is indented 7 space(s), unlike the other fields of the "
        "block at line 23: indent it exactly like them",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_a_colon_inside_text_asks_for_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (HEADER + THEN + TESTS).replace("is ordered", "is ordered: check")
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        'r/imatinib/msg.yaml:26:54 E001 a second `: ` on this line: put the text in quotes ("a: b"), or start '
        "the new field on its own line",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_an_unknown_fact_suggests_the_closest_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = HEADER.replace("{eq: [comed.strong_cyp3a4_inhibitor", "{eq: [comed.strong_cyp3a4_inhbitor") + THEN + TESTS
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        "r/imatinib/msg.yaml:21:17 E003 unknown fact `comed.strong_cyp3a4_inhbitor` (not in facts.yaml); did you "
        "mean `comed.strong_cyp3a4_inhibitor`?",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_edit_distance_and_closest_names() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert closest("renal.crc", ["renal.crcl", "renal.impairment", "hep.ast"]) == ["renal.crcl"]
    assert closest("weight", ["renal.crcl"]) == []


def test_an_unknown_policy_parameter_suggests_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    when = "    when: {lt: [tdm.trough, policy.cml_trough_targe]}\n"
    text = HEADER.replace("    when: {eq: [comed.strong_cyp3a4_inhibitor, true]}\n", when) + THEN + TESTS
    assert check_lines(tmp_path, capsys, monkeypatch, text) == [
        "r/imatinib/msg.yaml:21:29 E013 unknown policy parameter 'cml_trough_targe'; did you mean `cml_trough_target`?",
        "not loaded: 1 error(s), 0 warning(s)",
    ]
