"""Fact labels (rules/facts.yaml `labels:`): loaded onto the facts, checked, and the fallback for a fact without
one is words of its description, never its id."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.engine.ruleset import RuleSet
from cds.engine.vocabulary import load_vocabulary
from cds.errors import RuleError

FACTS = """version: 1
facts:
  renal.crcl: {type: number, unit: mL/min, range: [0, 300], description: Creatinine clearance (CG or measured)}
  comed.inducer_name: {type: code, description: Name of the strongest active CYP3A4 inducer}
  regimen.status: {type: code, values: [draft, active], description: Whether the regimen is a draft order or not}
"""


def vocabulary(tmp_path: Path, labels: str) -> Path:
    path = tmp_path / "facts.yaml"
    path.write_text(FACTS + labels, encoding="utf-8")
    return path


def test_labels_are_loaded_and_others_fall_back_to_their_description(tmp_path: Path) -> None:
    loaded = load_vocabulary(vocabulary(tmp_path, "labels:\n  renal.crcl: Creatinine clearance\n"))
    assert loaded["renal.crcl"].display_name == "Creatinine clearance"
    assert loaded["comed.inducer_name"].display_name == "Name of the strongest active CYP3A4"  # six words
    assert loaded["regimen.status"].display_name == "Whether the regimen is a draft"
    assert loaded["renal.crcl"].unit == "mL/min"  # the rest of the fact is untouched


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        ("labels:\n  renal.gfr: GFR\n", "not a fact"),
        ("labels:\n  renal.crcl: ''\n", "at most 60"),
        ("labels:\n  renal.crcl: " + "x" * 61 + "\n", "at most 60"),
        ("labels: [renal.crcl]\n", "must map"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, labels: str, error: str) -> None:
    with pytest.raises(RuleError, match=error):
        load_vocabulary(vocabulary(tmp_path, labels))


def test_the_project_labels_name_facts_of_the_vocabulary(rule_set: RuleSet) -> None:
    labelled = {name: spec.label for name, spec in rule_set.vocabulary.facts.items() if spec.label}
    assert labelled["level.conc"] == "Imatinib level (laboratory)"
    assert "(derived)" in labelled["pk.loglinear_cmin"]  # a derived trough is labelled as such (issue 14)
    assert all("." not in label.split(" ")[0] for label in labelled.values())
