"""`imatinib-cds rules diff`: edited copies of the shipped rules compared with the originals.

Every edited copy must still load (load_rules refuses, for example, a threshold without boundary tests), so
the edits are the ones a pharmacist would make, tests included.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds.cli.main import main
from cds.engine.diff import Snapshot, diff_snapshots, load_snapshot
from cds.engine.diff_render import render_json
from tests.conftest import RULES

NO_SECTION_CHANGES: dict[str, Any] = {
    "rules": {"added": [], "removed": [], "changed": [], "moved": []},
    "rule_files": {"added": [], "removed": [], "changed": []},
    "policy": {
        "old": {"id": "us-label", "version": "1.0.1"},
        "new": {"id": "us-label", "version": "1.0.1"},
        "changed": [],
        "added": [],
        "removed": [],
    },
    "terminology": {"added": [], "removed": [], "changed": []},
    "models": {"added": [], "removed": [], "changed": []},
    "other_files": {"added": [], "removed": [], "changed": []},
}

# Raising the CML target moves the boundary tests of the rules that compare against it (E010 otherwise).
CML_TARGET_EDITS = {
    "policy.yaml": [
        ("cml_trough_target:\n    value: 1000 ng/mL", "cml_trough_target:\n    value: 1100 ng/mL"),
        ("\nversion: 1.0.1\n", "\nversion: 1.1.0\n"),
        (
            "\nchange_log:\n",
            "\nchange_log:\n  - {version: 1.1.0, date: 2027-01-15, change: CML trough target 1100 ng/mL}\n",
        ),
    ],
    "imatinib/trough.yaml": [
        ("derived: {tdm.target_cmin: 1000 ng/mL}", "derived: {tdm.target_cmin: 1100 ng/mL}"),
        (
            "name: 999 is below\n        facts: {dx.indication: CML, tdm.trough: 999 ng/mL}",
            "name: 1099 is below\n        facts: {dx.indication: CML, tdm.trough: 1099 ng/mL}",
        ),
        (
            "name: 1000 is on target\n        facts: {dx.indication: CML, tdm.trough: 1000 ng/mL}\n"
            "        expect: {not_fired: [IMA-TROUGH-020]",
            "name: 1100 is on target\n        facts: {dx.indication: CML, tdm.trough: 1100 ng/mL}\n"
            "        expect: {not_fired: [IMA-TROUGH-020]",
        ),
        (
            "name: 1000 is on target\n        facts: {dx.indication: CML, tdm.trough: 1000 ng/mL}\n"
            "        expect: {fired: [IMA-TROUGH-022]",
            "name: 1100 is on target\n        facts: {dx.indication: CML, tdm.trough: 1100 ng/mL}\n"
            "        expect: {fired: [IMA-TROUGH-022]",
        ),
        (
            "name: 990 is below\n        facts: {dx.indication: CML, tdm.trough: 990 ng/mL}",
            "name: 1090 is below\n        facts: {dx.indication: CML, tdm.trough: 1090 ng/mL}",
        ),
        (
            "name: CML at the target exactly, before rifampin\n        facts: {dx.indication: CML, tdm.trough: 1000",
            "name: CML at the target exactly, before rifampin\n        facts: {dx.indication: CML, tdm.trough: 1100",
        ),
        (
            "name: CML 990 before rifampin is below target\n        facts: {dx.indication: CML, tdm.trough: 990",
            "name: CML 1090 before rifampin is below target\n        facts: {dx.indication: CML, tdm.trough: 1090",
        ),
        (
            "name: interval spans 1000\n        facts: {dx.indication: CML, tdm.sample_is_trough: false, "
            "pk.cmin_pred: 950 ng/mL, pk.cmin_p05: 990 ng/mL, pk.cmin_p95: 1000 ng/mL}",
            "name: interval spans 1100\n        facts: {dx.indication: CML, tdm.sample_is_trough: false, "
            "pk.cmin_pred: 1050 ng/mL, pk.cmin_p05: 1090 ng/mL, pk.cmin_p95: 1100 ng/mL}",
        ),
        ("pk.cmin_p05: 1000 ng/mL, pk.cmin_p95: 1600 ng/mL", "pk.cmin_p05: 1100 ng/mL, pk.cmin_p95: 1600 ng/mL"),
        ("pk.cmin_p05: 500 ng/mL, pk.cmin_p95: 990 ng/mL", "pk.cmin_p05: 500 ng/mL, pk.cmin_p95: 1090 ng/mL"),
        ("\n  version: 1.8.0\n", "\n  version: 1.9.0\n"),
        (
            'No condition changed"}\n',
            'No condition changed"}\n    - {version: 1.9.0, date: 2027-01-15, change: Boundary tests follow the '
            "CML trough target of 1100 ng/mL, why: policy us-label 1.1.0}\n",
        ),
    ],
}
CML_TARGET_USERS = [
    "IMA-TROUGH-010",
    "IMA-TROUGH-020",
    "IMA-TROUGH-022",
    "IMA-TROUGH-024",
    "IMA-TROUGH-030",
    "IMA-TROUGH-050",
    "IMA-TROUGH-051",
]


class _NoAliases(yaml.SafeDumper):
    """Writes every repeated node out in full: no anchors in the re-dumped copy."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@pytest.fixture(scope="module")
def shipped() -> Snapshot:
    return load_snapshot(RULES)


@pytest.fixture(scope="module")
def cml_target_raised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_rules(tmp_path_factory.mktemp("cml-target"))
    for name, edits in CML_TARGET_EDITS.items():
        for old, new in edits:
            replace_once(root / name, old, new)
    return root


def copy_rules(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(RULES, root)
    return root


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name}: {old!r} occurs {text.count(old)} times"
    path.write_text(text.replace(old, new), encoding="utf-8")


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    """Parse, change, write back (comments and anchors are lost, which must not matter)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.dump(data, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=120), "utf-8")


def rule_of(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(rule for rule in data["rules"] if rule["id"] == rule_id)


def sections(old: Snapshot, new: Path) -> dict[str, Any]:
    """The --json output without the sides (paths and digests), which tests check on their own."""
    found = json.loads(render_json(diff_snapshots(old, load_snapshot(new))))
    found.pop("sides")
    return dict(found)


def expected(**changed: Any) -> dict[str, Any]:
    return {**NO_SECTION_CHANGES, **changed}


# --- no changes -------------------------------------------------------------------------------------------


def test_identical_directories_give_an_empty_diff(shipped: Snapshot, tmp_path: Path) -> None:
    copy = load_snapshot(copy_rules(tmp_path))
    diff = diff_snapshots(shipped, copy)
    assert diff.empty
    assert sections(shipped, copy_rules(tmp_path / "again")) == NO_SECTION_CHANGES
    assert (diff.sides.old.digest, diff.sides.old.version) == (diff.sides.new.digest, diff.sides.new.version)


def test_re_dumped_yaml_without_comments_or_anchors_is_no_change(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)
    files = sorted(root.rglob("*.yaml"))
    for path in files:
        before = path.read_text(encoding="utf-8")
        data = yaml.safe_load(before)
        path.write_text(yaml.dump(data, Dumper=_NoAliases, sort_keys=True, width=80), encoding="utf-8")
        assert path.read_text(encoding="utf-8") != before, path  # the layout really changed
    assert len(files) > 20
    diff = diff_snapshots(shipped, load_snapshot(root))
    assert diff.empty, render_json(diff)
    assert diff.sides.new.digest == diff.sides.old.digest


def test_reordered_conditions_and_an_equal_threshold_in_other_units_are_no_change(
    shipped: Snapshot, tmp_path: Path
) -> None:
    root = copy_rules(tmp_path)
    replace_once(
        root / "imatinib/renal.yaml", "when: {gte: [renal.crcl, 60 mL/min]}", "when: {gte: [renal.crcl, 1 mL/s]}"
    )

    def swap(data: Any) -> None:
        conditions = rule_of(data, "IMA-RENAL-010")["when"]["all"]
        conditions.reverse()

    edit_yaml(root / "imatinib/renal.yaml", swap)
    assert sections(shipped, root) == NO_SECTION_CHANGES


# --- rules --------------------------------------------------------------------------------------------------


def test_a_changed_threshold_is_reported_with_old_and_new_value_and_unit(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)
    renal = root / "imatinib/renal.yaml"
    replace_once(renal, "when: {lt: [renal.crcl, 20 mL/min]}", "when: {lt: [renal.crcl, 15 mL/min]}")
    severe, not_severe = "expect: {fired: [IMA-RENAL-003]}}", "expect: {not_fired: [IMA-RENAL-003]}}"
    replace_once(
        renal,
        "{name: CrCl 19 is severe, facts: {renal.crcl: 19 mL/min}, " + severe,
        "{name: CrCl 14 is severe, facts: {renal.crcl: 14 mL/min}, " + severe,
    )
    replace_once(
        renal,
        "{name: CrCl 20 is not severe, facts: {renal.crcl: 20 mL/min}, " + not_severe,
        "{name: CrCl 15 is not severe, facts: {renal.crcl: 15 mL/min}, " + not_severe,
    )
    replace_once(renal, "\n  version: 1.4.0\n", "\n  version: 1.5.0\n")
    rules = {
        "added": [],
        "removed": [],
        "moved": [],
        "changed": [
            {
                "rule": "IMA-RENAL-003",
                "fields": ["when", "tests"],
                "version": {"old": "renal@1.4.0", "new": "renal@1.5.0"},
                "changes": {
                    "when": {"old": {"lt": ["renal.crcl", "20 mL/min"]}, "new": {"lt": ["renal.crcl", "15 mL/min"]}},
                    "tests": {
                        "removed": [
                            {
                                "name": "CrCl 19 is severe",
                                "facts": {"renal.crcl": "19 mL/min"},
                                "expect": {"fired": ["IMA-RENAL-003"]},
                            },
                            {
                                "name": "CrCl 20 is not severe",
                                "facts": {"renal.crcl": "20 mL/min"},
                                "expect": {"not_fired": ["IMA-RENAL-003"]},
                            },
                        ],
                        "added": [
                            {
                                "name": "CrCl 14 is severe",
                                "facts": {"renal.crcl": "14 mL/min"},
                                "expect": {"fired": ["IMA-RENAL-003"]},
                            },
                            {
                                "name": "CrCl 15 is not severe",
                                "facts": {"renal.crcl": "15 mL/min"},
                                "expect": {"not_fired": ["IMA-RENAL-003"]},
                            },
                        ],
                    },
                },
                "thresholds": [
                    {
                        "fact": "renal.crcl",
                        "op": "lt",
                        "old": "20 mL/min",
                        "new": "15 mL/min",
                        "old_value": 20.0,
                        "new_value": 15.0,
                        "unit": "mL/min",
                    }
                ],
            }
        ],
    }
    rule_files = {
        "added": [],
        "removed": [],
        "changed": [
            {
                "ruleset": "renal",
                "fields": ["version"],
                "version": {"old": "1.4.0", "new": "1.5.0"},
                "change_log_added": [],
            }
        ],
    }
    assert sections(shipped, root) == expected(rules=rules, rule_files=rule_files)


def test_edited_card_text_and_dose_effect_are_named_by_their_keys(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)

    def edit(data: Any) -> None:
        then = rule_of(data, "IMA-RENAL-011")["then"]
        then["card"]["summary"] = "CrCl {renal.crcl} mL/min (mild renal impairment): no increase above 600 mg/day"
        then["dose"]["reason"] = "label ceiling (mild renal impairment)"

    edit_yaml(root / "imatinib/renal.yaml", edit)
    change = {
        "rule": "IMA-RENAL-011",
        "fields": ["then.dose.reason", "then.card.summary"],
        "version": {"old": "renal@1.4.0", "new": "renal@1.4.0"},
        "changes": {
            "then.dose.reason": {
                "old": "label ceiling in mild renal impairment",
                "new": "label ceiling (mild renal impairment)",
            },
            "then.card.summary": {
                "old": "CrCl {renal.crcl} mL/min (mild renal impairment): any increase of imatinib is capped at "
                "600 mg/day",
                "new": "CrCl {renal.crcl} mL/min (mild renal impairment): no increase above 600 mg/day",
            },
        },
        "thresholds": [],
    }
    assert sections(shipped, root) == expected(rules={"added": [], "removed": [], "changed": [change], "moved": []})


def test_added_and_removed_rules(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)

    def edit(data: Any) -> None:
        copy = json.loads(json.dumps(rule_of(data, "IMA-RENAL-004")))
        copy["id"] = "IMA-RENAL-099"
        for test in copy["tests"]:
            for key in ("fired", "not_fired"):
                if key in test["expect"]:
                    test["expect"][key] = ["IMA-RENAL-099"]
        data["rules"] = [r for r in data["rules"] if r["id"] != "IMA-RENAL-050"] + [copy]
        data["ruleset"]["retired_ids"] = ["IMA-RENAL-050"]

    edit_yaml(root / "imatinib/renal.yaml", edit)
    found = sections(shipped, root)
    assert found["rules"] == {"added": ["IMA-RENAL-099"], "removed": ["IMA-RENAL-050"], "changed": [], "moved": []}
    assert found["rule_files"]["changed"] == [
        {
            "ruleset": "renal",
            "fields": ["retired_ids"],
            "version": {"old": "1.4.0", "new": "1.4.0"},
            "change_log_added": [],
        }
    ]


def test_a_rule_moved_to_another_file_is_reported_as_moved_not_changed(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)
    moving: list[Any] = []

    def take(data: Any) -> None:
        moving.append(rule_of(data, "IMA-RENAL-050"))
        data["rules"].remove(moving[0])

    edit_yaml(root / "imatinib/renal.yaml", take)
    edit_yaml(root / "imatinib/hepatic.yaml", lambda data: data["rules"].append(moving[0]))
    moved = [{"rule": "IMA-RENAL-050", "old": "renal.yaml", "new": "hepatic.yaml"}]
    assert sections(shipped, root) == expected(rules={"added": [], "removed": [], "changed": [], "moved": moved})


# --- policy, terminology, models ------------------------------------------------------------------------------


def test_raised_cml_target_names_the_parameter_its_rules_and_the_versions(
    shipped: Snapshot, cml_target_raised: Path
) -> None:
    found = sections(shipped, cml_target_raised)
    assert found["policy"] == {
        "old": {"id": "us-label", "version": "1.0.1"},
        "new": {"id": "us-label", "version": "1.1.0"},
        "changed": [
            {
                "name": "cml_trough_target",
                "old": "1000 ng/mL",
                "new": "1100 ng/mL",
                "unit": "ng/mL",
                "fields": ["value"],
                "rules": CML_TARGET_USERS,
            }
        ],
        "added": [],
        "removed": [],
    }
    assert [(c["rule"], c["fields"], c["version"]["new"], c["thresholds"]) for c in found["rules"]["changed"]] == [
        (rule_id, ["tests"], "trough@1.9.0", [])
        for rule_id in ("IMA-TROUGH-010", "IMA-TROUGH-020", "IMA-TROUGH-022", "IMA-TROUGH-024", "IMA-TROUGH-030")
    ]
    assert found["rules"]["changed"][1]["changes"]["tests"] == {
        "removed": [
            {
                "name": "999 is below",
                "facts": {"dx.indication": "CML", "tdm.trough": "999 ng/mL"},
                "expect": {"fired": ["IMA-TROUGH-020"], "derived": {"tdm.below_target": True}},
            },
            {
                "name": "1000 is on target",
                "facts": {"dx.indication": "CML", "tdm.trough": "1000 ng/mL"},
                "expect": {"not_fired": ["IMA-TROUGH-020"], "derived": {"tdm.below_target": False}},
            },
        ],
        "added": [
            {
                "name": "1099 is below",
                "facts": {"dx.indication": "CML", "tdm.trough": "1099 ng/mL"},
                "expect": {"fired": ["IMA-TROUGH-020"], "derived": {"tdm.below_target": True}},
            },
            {
                "name": "1100 is on target",
                "facts": {"dx.indication": "CML", "tdm.trough": "1100 ng/mL"},
                "expect": {"not_fired": ["IMA-TROUGH-020"], "derived": {"tdm.below_target": False}},
            },
        ],
    }
    assert found["rule_files"]["changed"] == [
        {
            "ruleset": "trough",
            "fields": ["version", "change_log"],
            "version": {"old": "1.8.0", "new": "1.9.0"},
            "change_log_added": [
                {
                    "version": "1.9.0",
                    "date": "2027-01-15",
                    "change": "Boundary tests follow the CML trough target of 1100 ng/mL",
                    "why": "policy us-label 1.1.0",
                }
            ],
        }
    ]
    assert {k: found[k] for k in ("terminology", "models", "other_files")} == {
        k: NO_SECTION_CHANGES[k] for k in ("terminology", "models", "other_files")
    }


def test_policy_evidence_only_change_and_added_parameter(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)

    def edit(data: Any) -> None:
        data["parameters"]["tablet_step_mg"]["evidence"] = "Gleevec USPI, How Supplied (2024 revision)"
        data["parameters"]["review_interval_days"] = {"value": "90 d", "level": "local-policy", "evidence": "P&T"}

    edit_yaml(root / "policy.yaml", edit)
    policy = {
        **NO_SECTION_CHANGES["policy"],
        "changed": [
            {
                "name": "tablet_step_mg",
                "old": "100 mg",
                "new": "100 mg",
                "unit": "mg",
                "fields": ["evidence"],
                "rules": [],
            }
        ],
        "added": [{"name": "review_interval_days", "value": "90 d", "unit": "d"}],
    }
    assert sections(shipped, root) == expected(policy=policy)


def test_terminology_code_added_and_member_status_changed(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)
    replace_once(
        root / "terminology/imatinib.yaml",
        '{name: "Glivec", status: U,',
        '{name: "Glivec", aliases: [Imatib], rxnorm: "999999", status: V,',
    )
    terminology = {
        "added": [],
        "removed": [],
        "changed": [
            {
                "value_set": "imatinib",
                "added": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "999999"},
                    {"name": "imatib"},
                ],
                "removed": [],
                "members_changed": [{"member": "Glivec", "field": "status", "old": "U", "new": "V"}],
                "settings": [],
            }
        ],
    }
    assert sections(shipped, root) == expected(terminology=terminology)


def test_pk_model_parameter_change_with_its_unit(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)
    model = root / "models/imatinib-petain2008.yaml"
    replace_once(model, "typical: 7.29", "typical: 7.5")
    replace_once(
        model,
        "{covariate: weight_kg, form: power, reference: 54, exponent: 0.56}",
        "{covariate: weight_kg, form: power, reference: 54, exponent: 0.6}",
    )
    models = {
        "added": [],
        "removed": [],
        "changed": [
            {
                "model": "imatinib-petain2008",
                "parameters": [
                    {"name": "parameters.CL.typical", "old": 7.29, "new": 7.5, "unit": "L/h"},
                    {"name": "parameters.CL.multiplicative[weight_kg].exponent", "old": 0.56, "new": 0.6, "unit": None},
                ],
            }
        ],
    }
    assert sections(shipped, root) == expected(models=models)


def test_removed_model_and_changed_fact_vocabulary(shipped: Snapshot, tmp_path: Path) -> None:
    root = copy_rules(tmp_path)
    (root / "models/imatinib-petain2008.yaml").unlink()
    edit_yaml(root / "mapping.yaml", lambda data: data.update(extra_setting_for_test=True))
    found = sections(shipped, root)
    assert found["models"] == {"added": [], "removed": ["imatinib-petain2008"], "changed": []}
    assert found["other_files"] == {"added": [], "removed": [], "changed": ["mapping.yaml"]}


# --- the command -----------------------------------------------------------------------------------------------


def test_cli_markdown_for_the_raised_cml_target(cml_target_raised: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "diff", str(RULES), str(cml_target_raised)]) == 0
    old, new = load_snapshot(RULES).rule_set, load_snapshot(cml_target_raised).rule_set
    assert capsys.readouterr().out == CML_TARGET_MARKDOWN.format(
        old=RULES, new=cml_target_raised, old_digest=old.digest[:12], new_digest=new.digest[:12]
    )


def test_cli_json_keeps_the_published_keys(cml_target_raised: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "diff", "--json", str(RULES), str(cml_target_raised)]) == 0
    found = json.loads(capsys.readouterr().out)
    old, new = load_snapshot(RULES).rule_set, load_snapshot(cml_target_raised).rule_set
    assert found["sides"] == {
        "old": {"root": str(RULES), "version": old.version, "digest": old.digest},
        "new": {"root": str(cml_target_raised), "version": new.version, "digest": new.digest},
    }
    assert new.digest != old.digest and "trough@1.9.0" in new.version
    assert list(found) == ["sides", "rules", "rule_files", "policy", "terminology", "models", "other_files"]
    assert found["policy"]["changed"][0] == {
        "name": "cml_trough_target",
        "old": "1000 ng/mL",
        "new": "1100 ng/mL",
        "unit": "ng/mL",
        "fields": ["value"],
        "rules": CML_TARGET_USERS,
    }


def test_cli_exit_code_option_follows_diff(cml_target_raised: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "diff", "--exit-code", str(RULES), str(cml_target_raised)]) == 1
    assert "1000 ng/mL -> 1100 ng/mL" in capsys.readouterr().out
    assert main(["rules", "diff", "--exit-code", str(RULES), str(RULES)]) == 0
    out = capsys.readouterr().out
    assert "The two rule sets are the same." in out and out.count("No changes.") == 5


def test_cli_missing_directory_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["rules", "diff", str(RULES), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"imatinib-cds: invalid input: NEW_DIR: {missing}: not a directory\n"


def test_cli_rule_set_that_does_not_load_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_rules(tmp_path)
    replace_once(
        root / "imatinib/renal.yaml", "when: {lt: [renal.crcl, 20 mL/min]}", "when: {lt: [renal.crcl, 15 mL/min]}"
    )
    assert main(["rules", "diff", str(root), str(RULES)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("imatinib-cds: invalid input: OLD_DIR: 1 error(s) in the rule files; first: ")
    assert err[0].endswith(
        "E010 IMA-RENAL-003: threshold lt 15 mL/min on renal.crcl needs a test at 15 mL/min and a test just below "
        '15 mL/min (14 mL/min or more); nearest tests: "CrCl 19 is severe" (19 mL/min), "CrCl 20 is not severe" '
        "(20 mL/min)"
    )


CML_TARGET_MARKDOWN = """\
# Rule set diff

- Old: `{old}`, digest `{old_digest}`
- New: `{new}`, digest `{new_digest}`
- Rule-set version: trough 1.8.0 -> 1.9.0; policy:us-label 1.0.1 -> 1.1.0 (other active rule files unchanged)

## Rules

### IMA-TROUGH-010 (trough 1.8.0 -> 1.9.0)

- `tests`: changed "CML target"

### IMA-TROUGH-020 (trough 1.8.0 -> 1.9.0)

- `tests`: removed "999 is below", "1000 is on target"; added "1099 is below", "1100 is on target"

### IMA-TROUGH-022 (trough 1.8.0 -> 1.9.0)

- `tests`: removed "1000 is on target", "990 is below"; added "1100 is on target", "1090 is below"

### IMA-TROUGH-024 (trough 1.8.0 -> 1.9.0)

- `tests`: removed "CML 990 before rifampin is below target"; added "CML 1090 before rifampin is below target"; \
changed "CML at the target exactly, before rifampin"

### IMA-TROUGH-030 (trough 1.8.0 -> 1.9.0)

- `tests`: removed "interval spans 1000"; added "interval spans 1100"; changed "lower bound at the target is not \
uncertain", "upper bound below the target is clearly below"

## Rule files

- `trough` (1.8.0 -> 1.9.0): version, change_log changed
  - change log 1.9.0, 2027-01-15: Boundary tests follow the CML trough target of 1100 ng/mL (why: policy us-label \
1.1.0)

## Policy

Policy `us-label` 1.0.1 -> `us-label` 1.1.0:

- `cml_trough_target`: 1000 ng/mL -> 1100 ng/mL (used by IMA-TROUGH-010, IMA-TROUGH-020, IMA-TROUGH-022, \
IMA-TROUGH-024, IMA-TROUGH-030, IMA-TROUGH-050, IMA-TROUGH-051)

## Terminology

No changes.

## PK models

No changes.

## Other files

No changes.
"""


def test_markdown_of_the_documented_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The example in docs/rule-language.md (digests aside, which follow the shipped rules)."""
    root = copy_rules(tmp_path)
    renal = root / "imatinib/renal.yaml"
    severe, not_severe = "expect: {fired: [IMA-RENAL-003]}}", "expect: {not_fired: [IMA-RENAL-003]}}"
    replace_once(renal, "when: {lt: [renal.crcl, 20 mL/min]}", "when: {lt: [renal.crcl, 15 mL/min]}")
    replace_once(
        renal,
        "{name: CrCl 19 is severe, facts: {renal.crcl: 19 mL/min}, " + severe,
        "{name: CrCl 14 is severe, facts: {renal.crcl: 14 mL/min}, " + severe,
    )
    replace_once(
        renal,
        "{name: CrCl 20 is not severe, facts: {renal.crcl: 20 mL/min}, " + not_severe,
        "{name: CrCl 15 is not severe, facts: {renal.crcl: 15 mL/min}, " + not_severe,
    )
    replace_once(
        root / "terminology/imatinib.yaml",
        '{name: "Glivec", status: U,',
        '{name: "Glivec", rxnorm: "999999", status: U,',
    )
    replace_once(root / "models/imatinib-petain2008.yaml", "typical: 7.29", "typical: 7.5")
    assert main(["rules", "diff", str(RULES), str(root)]) == 0
    out = capsys.readouterr().out
    documented = (RULES.parent / "docs/rule-language.md").read_text(encoding="utf-8")
    example = documented.split("$ imatinib-cds rules diff rules rules-new\n", 1)[1].split("```", 1)[0]
    shown = out.replace(f"`{RULES}`", "`rules`").replace(f"`{root}`", "`rules-new`")
    assert _without_digests(shown) == _without_digests(example)


def _without_digests(text: str) -> str:
    return re.sub(r"digest `[0-9a-f]{12}`", "digest `...`", text)


def test_markdown_names_a_policy_reference_and_a_re_wrapped_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_rules(tmp_path)
    trough = root / "imatinib/trough.yaml"
    replace_once(
        trough,
        "        - {eq: [dx.indication, CML]}\n        - {lt: [tdm.trough, policy.cml_trough_target]}\n",
        "        - {eq: [dx.indication, CML]}\n        - {lt: [tdm.trough, 1000 ng/mL]}\n",
    )
    replace_once(
        trough,
        "taken just before a dose.\n    tests:\n      - name: 999 is below",
        "taken\n          just before a dose.\n    tests:\n      - name: 999 is below",
    )
    assert main(["rules", "diff", str(RULES), str(root)]) == 0
    out = capsys.readouterr().out
    rule = out.split("### IMA-TROUGH-020 (trough 1.8.0, version not bumped)\n\n", 1)[1].split("\n\n", 1)[0]
    assert rule.splitlines() == [
        "- threshold `tdm.trough` < `policy.cml_trough_target` (1000 ng/mL) -> 1000 ng/mL",
        "- `when`: `{all: [{eq: [dx.indication, CML]}, {lt: [tdm.trough, policy.cml_trough_target]}]}` -> "
        "`{all: [{eq: [dx.indication, CML]}, {lt: [tdm.trough, 1000 ng/mL]}]}`",
        "- `then.card.detail`: line breaks or spacing only",
    ]
    assert "`cml_trough_target`" not in out  # the policy itself did not change
