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


def test_rules_test_runs_the_rules_that_load_and_names_missing_boundary_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    invalid = Path(__file__).parent / "invalid"
    unknown_fact = (invalid / "e003_unknown_fact.yaml").read_text(encoding="utf-8").replace("IMA-X-001", "IMA-X-003")
    make_rules_root(tmp_path / "r", invalid / "e010_no_boundary.yaml", ("e003.yaml", unknown_fact))
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "test", "r"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "rules check reports 2 error(s): testing the 1 rule(s) that load",
        "pass  IMA-X-001  far below",
        "pass  IMA-X-001  at",
        "MISS  IMA-X-001  a test just below 40 mL/min (38 mL/min or more)",
        '      r/imatinib/e010_no_boundary.yaml:22 E010 threshold lt 40 mL/min on renal.crcl; nearest tests: "at" '
        '(40 mL/min), "far below" (10 mL/min)',
        "2 cases ran: 2 passed, 0 failed; 1 boundary test(s) missing",
    ]


def test_e010_points_at_the_threshold_and_names_the_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture = (Path(__file__).parent / "invalid" / "e010_no_boundary.yaml").read_text(encoding="utf-8")
    make_rules_root(tmp_path / "r", ("e010.yaml", fixture.replace("renal.crcl: 40 mL/min", "renal.crcl: 41 mL/min")))
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "check", "r"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "r/imatinib/e010.yaml:22:29 E010 IMA-X-001: threshold lt 40 mL/min on renal.crcl needs a test at 40 mL/min "
        'and a test just below 40 mL/min (38 mL/min or more); nearest tests: "at" (41 mL/min), "far below" (10 mL/min)',
        "    fix: add the tests named, with the fact at the threshold and just across it",
        "not loaded: 1 error(s), 0 warning(s)",
    ]


def test_rules_which_finds_a_recorded_digest_in_the_git_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    from cds.engine.ruleset import digest_of

    root = make_rules_root(tmp_path / "rules", FEATURES)

    def git(*args: str) -> str:
        command = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first rules")
    first, old = git("rev-parse", "HEAD"), digest_of(root)
    policy = (root / "policy.yaml").read_text(encoding="utf-8")
    (root / "policy.yaml").write_text(policy.replace("value: 2000 ng/mL", "value: 2100 ng/mL"), encoding="utf-8")
    git("commit", "-qam", "high trough 2100")
    date = git("log", "-1", "--format=%cs", first)

    assert main(["rules", "which", old[:12], "--rules", str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"git {first[:12]} {date} first rules",
        f"      git archive {first[:12]} rules | tar -x -C DIR",
    ]
    assert main(["rules", "which", "abcdef", "--rules", str(root)]) == 1
    assert capsys.readouterr().out == f"no rules with digest abcdef in {root}, its git history\n"


def test_rules_which_reads_the_version_the_audit_log_recorded() -> None:
    from cds.engine.provenance import Recorded, recorded_with_digest

    def entry(digest: str, at: str) -> dict[str, object]:
        return {"created_at": at, "payload": {"ruleset": {"digest": digest, "version": "renal@1.4.0+policy:x@1"}}}

    entries = [entry("abc123ff", "2026-12-01"), entry("abc123ff", "2026-12-03"), entry("def456", "2026-12-02")]
    assert recorded_with_digest(entries, "abc123") == [
        Recorded("abc123ff", "renal@1.4.0+policy:x@1", 2, "2026-12-01", "2026-12-03")
    ]
