"""`imatinib-cds rules ...` and `serve` as a pharmacist or a new user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cds.cli.main import main
from cds.engine.ruleset import load_rules
from cds.engine.yamlpos import load_located
from tests.conftest import RULES, make_rules_root

FEATURES = Path(__file__).parent / "features.yaml"


def test_rules_test_prints_a_table_and_counts(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(rules_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    ran = sum(len(r.tests) for r in load_rules(rules_dir).rules)
    assert out[-1] == f"{ran} cases ran: {ran} passed, 0 failed"
    assert all(line.startswith("pass  ") for line in out[:-1])


def test_a_failing_rule_test_is_reported_with_file_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = FEATURES.read_text(encoding="utf-8")
    wrong = "expect: {fired: [FX-NOT-001], dose: {daily_mg: 200}}"
    broken = features.replace("expect: {fired: [FX-NOT-001], dose: {daily_mg: 300}}", wrong)
    assert broken != features
    root = make_rules_root(tmp_path, ("features.yaml", broken))
    assert main(["rules", "test", str(root)]) == 1
    out = capsys.readouterr().out
    assert any(line.split() == ["FAIL", "FX-NOT-001", "below", "low"] for line in out.splitlines())
    assert "features.yaml:" in out and "E015 expected 200 mg/day; got 300.0" in out
    assert out.splitlines()[-1].endswith("1 failed")


def test_reference_engine_passes_the_same_tests(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", "--engine", "reference", str(rules_dir)]) == 0


def test_schema_is_valid_and_accepts_every_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in sorted((RULES / "imatinib").glob("*.yaml")):
        data = load_located(path.read_text(encoding="utf-8")).data
        assert list(validator.iter_errors(data)) == [], path.name


def test_show_prints_the_rule_as_written(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "IMA-RENAL-020", "--rules", str(rules_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# IMA-RENAL-020 - Moderate renal impairment at a new start")
    assert "factor: 0.5" in out and "renal.yaml:" in out


def test_show_unknown_rule_is_one_line_and_exit_1(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "IMA-NOPE-999", "--rules", str(rules_dir)]) == 1
    assert capsys.readouterr().err.strip() == f"imatinib-cds: no rule IMA-NOPE-999 in {rules_dir}"


def test_check_without_a_rules_root_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no facts.yaml found" in err[0]


def test_committee_catalogue_is_current(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/rules.md is what `rules show --all --markdown` prints; regenerate it when the rules change."""
    assert main(["rules", "show", "--all", "--markdown", "--rules", str(rules_dir)]) == 0
    out = capsys.readouterr().out
    assert out == (rules_dir.parent / "docs" / "rules.md").read_text(encoding="utf-8")
    assert all("IMA-" in line for line in out.splitlines() if line.startswith("### "))
