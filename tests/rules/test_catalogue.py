"""The catalogue lists every rule with its evidence, and docs/rules.md is the generated one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli.main import main
from cds.engine.catalogue import render_catalogue
from cds.engine.ruleset import RuleSet
from tests.conftest import ROOT


def test_catalogue_lists_every_rule_with_evidence(rule_set: RuleSet) -> None:
    text = render_catalogue(rule_set)
    for rule in rule_set.rules:
        assert f"### {rule.id} - {rule.title}" in text
        for evidence in rule.evidence:
            assert " ".join(evidence.citation.split()) in text


def test_docs_rules_md_is_up_to_date(rule_set: RuleSet) -> None:
    shipped = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert shipped == render_catalogue(rule_set), "regenerate: imatinib-cds rules catalogue -o docs/rules.md"


def test_the_markdown_when_reads_as_the_review_page_does(rule_set: RuleSet) -> None:
    """One wording for both committee documents: facts by their labels, policy values resolved."""
    text = render_catalogue(rule_set)
    assert (
        "- **When:** (Indication (dx.indication) is CML and The trough used for interpretation (tdm.trough) is below "
        "1000 ng/mL [policy.cml_trough_target, study])"
    ) in text


def test_catalogue_command_writes_a_file(tmp_path: Path, rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rules.md"
    assert main(["rules", "catalogue", str(rules_dir), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith("# Imatinib rule catalogue")
