"""The linter: every diagnostic code has an invalid file that must produce it (first line: `# expect: CODES`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli.main import main
from cds.engine.ruleset import check_rules, load_rules
from tests.conftest import make_rules_root

INVALID = Path(__file__).parent / "invalid"
FEATURES = Path(__file__).parent / "features.yaml"
CASES = sorted(INVALID.glob("*.yaml"))


def expected_codes(path: Path) -> set[str]:
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# expect:"), f"{path.name} must start with '# expect: CODES'"
    return set(header.removeprefix("# expect:").split())


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_invalid_file_yields_its_codes(tmp_path: Path, path: Path) -> None:
    rule_set, diagnostics = check_rules(make_rules_root(tmp_path, path))
    assert rule_set is None
    assert {d.code for d in diagnostics} == expected_codes(path)
    assert all(d.file.endswith(path.name) and d.line >= 1 and d.col >= 1 for d in diagnostics)


def test_every_code_except_test_failures_has_an_invalid_file() -> None:
    from cds.engine.diagnostics import CODES

    covered = set().union(*(expected_codes(p) for p in CASES))
    # E015 is reported by `rules test` (test_cli.py); E019/E020/E023 need a guideline map (below)
    assert covered == set(CODES) - {"E015", "E019", "E020", "E023"}


def test_guideline_map_problems_fail_the_check(tmp_path: Path) -> None:
    root = make_rules_root(tmp_path, FEATURES)
    (root / "guideline-map.yaml").write_text(
        "version: 1\n"
        "sources:\n  FX: {title: fixture}\n"
        "recommendations:\n"
        "  - {id: FX-1, source: FX, level: local-policy, statement: two rules, rules: [FX-ANY-001, FX-NOT-001]}\n"
        "  - {id: FX-2, source: FX, level: local-policy, statement: names nothing}\n"
        "  - {id: FX-3, source: FX, level: local-policy, statement: a ghost, rules: [FX-GHOST-001]}\n"
    )
    rule_set, diagnostics = check_rules(root)
    assert rule_set is None
    codes = [d.code for d in diagnostics]
    assert codes.count("E019") == 4  # FX-IN-001, FX-NOTIN-001, FX-STAGE-001, FX-GT-001 are cited by nothing
    assert codes.count("E020") == 2  # FX-2 has neither rules nor a reason; FX-3 names an unknown rule


def test_one_file_with_several_problems_reports_all_with_lines(tmp_path: Path) -> None:
    _, diagnostics = check_rules(make_rules_root(tmp_path, INVALID / "several_problems.yaml"))
    found = {(d.code, d.line) for d in diagnostics}
    assert found == {("E008", 21), ("E004", 24), ("E003", 25), ("E011", 32), ("E009", 37), ("E007", 38)}


def test_shipped_rules_have_no_diagnostics(rules_dir: Path) -> None:
    rule_set, diagnostics = check_rules(rules_dir)
    assert [str(d) for d in diagnostics] == []
    assert rule_set is not None and rule_set.rules


def test_check_command_prints_each_problem_with_its_fix_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_rules_root(tmp_path / "r", INVALID / "several_problems.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "check", "r"]) == 1
    where = "r/imatinib/several_problems.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"{where}:21:15 E008 rule IMA-X-001 cites no evidence",
        "    fix: add an `evidence:` entry with citation and level",
        f"{where}:24:29 E004 '40 kg' for renal.crcl (canonical unit mL/min): cannot convert kg (mass) to mL/min (flow)",
        "    fix: write the threshold with a unit that converts to the fact's unit (units of rules/facts.yaml)",
        f"{where}:25:17 E003 unknown fact `renal.kidney_score` (not in facts.yaml)",
        "    fix: use a fact named in rules/facts.yaml, or declare the new fact there",
        f"{where}:32:13 E011 unknown hook 'order-dispatch' (expected one of order-sign, order-select, patient-view)",
        "    fix: use one of the hooks order-select, order-sign, patient-view",
        f"{where}:37:12 E009 rule IMA-X-002 has no test",
        "    fix: add a `tests:` entry that makes the rule fire",
        f"{where}:38:5 E007 duplicate rule id IMA-X-002 (first defined at {where}:30)",
        "    fix: give the rule a new id that was never used (see `retired_ids`)",
        "not loaded: 6 error(s), 0 warning(s)",
    ]


def test_every_code_has_a_fix_and_a_docs_entry() -> None:
    from cds.engine.diagnostics import CODES, FIXES

    assert set(FIXES) == set(CODES)
    docs = (Path(__file__).parents[2] / "docs" / "rule-language.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"| {code} |" in docs and f"#### {code}" in docs, code


def test_check_command_on_shipped_rules_exits_0(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(rules_dir)]) == 0
    assert capsys.readouterr().out.startswith("0 error(s)")


def test_digest_ignores_formatting_but_not_content(tmp_path: Path) -> None:
    original = FEATURES.read_text(encoding="utf-8")
    reformatted = original + "\n# a comment changes nothing a rule means\n"
    edited = original.replace("version: 1.0.0\n  status: active", "version: 1.0.1\n  status: active", 1)
    assert edited != original
    digests = []
    for name, text in (("a", original), ("b", reformatted), ("c", edited)):
        rule_set, _ = check_rules(make_rules_root(tmp_path / name, ("features.yaml", text)))
        assert rule_set is not None
        digests.append(rule_set.digest)
    assert digests[0] == digests[1] != digests[2]


def test_unquoted_yes_no_codes_are_refused(tmp_path: Path) -> None:
    from cds.errors import RuleError

    root = make_rules_root(tmp_path, FEATURES)
    facts = root / "facts.yaml"
    text = facts.read_text(encoding="utf-8").replace('values: ["yes", "no", unknown]', "values: [yes, no, unknown]")
    assert "[yes, no, unknown]" in text
    facts.write_text(text, encoding="utf-8")
    with pytest.raises(RuleError, match="quote YAML words such as yes/no"):
        check_rules(root)


def test_the_policy_version_is_part_of_the_rule_set_version(tmp_path: Path) -> None:
    root = make_rules_root(tmp_path, FEATURES)
    policy = (root / "policy.yaml").read_text(encoding="utf-8")
    before = load_rules(root).version
    assert before.endswith("+policy:us-label@1.0.1")
    entry = "\nchange_log:\n  - {version: 1.1.0, date: 2027-01-15, change: high trough 2100 ng/mL}\n"
    edited = policy.replace("version: 1.0.1\n", "version: 1.1.0\n").replace("\nchange_log:\n", entry)
    (root / "policy.yaml").write_text(edited.replace("value: 2000 ng/mL", "value: 2100 ng/mL"), encoding="utf-8")
    assert load_rules(root).version == before.replace("us-label@1.0.1", "us-label@1.1.0")


def test_a_policy_version_without_a_change_log_entry_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_rules_root(tmp_path, FEATURES)
    policy = (root / "policy.yaml").read_text(encoding="utf-8")
    (root / "policy.yaml").write_text(policy.replace("version: 1.0.1\n", "version: 1.1.0\n"), encoding="utf-8")
    assert main(["rules", "check", str(root)]) == 1
    assert capsys.readouterr().err == (
        f"imatinib-cds: RuleError: {root / 'policy.yaml'}: version 1.1.0 has no change_log entry: add change_log: "
        "[{version, date, change, why}] with an entry for every version, as in rule files\n"
    )


def test_a_map_statement_quoting_an_old_policy_value_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_rules_root(tmp_path / "r", FEATURES)
    rules = "[FX-ANY-001, FX-NOT-001, FX-IN-001, FX-NOTIN-001, FX-STAGE-001, FX-GT-001]"
    (root / "guideline-map.yaml").write_text(
        "version: 1\n"
        "sources:\n  FX: {title: fixture}\n"
        "recommendations:\n"
        f"  - {{id: FX-1, source: FX, level: local-policy, statement: every rule, rules: {rules}}}\n"
        "  - {id: FX-2, source: FX, level: study, statement: 'CML target >= 900 ng/mL (policy.cml_trough_target)',"
        " not_implemented: fixture}\n"
        "  - {id: FX-3, source: FX, level: study, statement: 'GIST >= 1100 ng/mL (policy.gist_trough_target)',"
        " not_implemented: fixture}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "check", "r"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "r/guideline-map.yaml:6:5 E023 FX-2 quotes 900 ng/mL but policy.cml_trough_target is now 1000 ng/mL: "
        "update the statement (or the policy value)",
        "    fix: quote the policy's current value in the statement of rules/guideline-map.yaml (a warning)",
        "0 error(s), 1 warning(s); 6 active rule(s)",
    ]
