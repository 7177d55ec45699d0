"""Acceptance checks of the shipped imatinib rule set (issue 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.engine.evaluate import RuleEngine
from cds.engine.ruleset import RuleSet, check_rules
from cds.engine.testing import run_rule_tests
from cds.pipeline import request_facts


def test_rules_check_has_no_errors(rules_dir: Path) -> None:
    rule_set, diagnostics = check_rules(rules_dir)
    assert rule_set is not None and [str(d) for d in diagnostics] == []


def test_at_least_30_active_rules_each_with_evidence_and_tests(rule_set: RuleSet) -> None:
    assert len(rule_set.rules) >= 30
    assert all(rule.evidence and rule.tests for rule in rule_set.rules)


@pytest.mark.parametrize("backend", ["durable", "reference"])
def test_all_rule_tests_pass(rule_set: RuleSet, backend: str) -> None:
    # as `rules test` runs them: a test may name a fhir_examples request, mapped by the FHIR pipeline
    results = run_rule_tests(RuleEngine(rule_set, backend=backend), request_facts)
    assert [r for r in results if not r.passed] == []
    assert [r.skipped for r in results if r.skipped] == []  # in the repository every request is there


def test_policy_parameters_carry_level_and_evidence(rule_set: RuleSet) -> None:
    for name, param in rule_set.policy.parameters.items():
        assert param.level in ("label", "guideline", "study", "local-policy", "unverified"), name
        assert param.evidence.strip(), name


def test_unverified_label_sentences_are_marked(rule_set: RuleSet) -> None:
    # clinical-rules.md marks these label sentences U: their rules must not claim level "label"
    for rule_id in ("IMA-HEP-010", "IMA-CYP-010", "IMA-TROUGH-052"):
        assert rule_set.rule(rule_id).evidence[0].level == "unverified", rule_id


@pytest.mark.parametrize(
    "facts, fired, action, daily_mg",
    [
        pytest.param(
            {
                "renal.crcl": 30.0,
                "comed.strong_cyp3a4_inducer": True,
                "comed.unavoidable_inducer_name": "rifampin",
                "regimen.daily_mg": 400.0,
            },
            {"IMA-CYP-010", "IMA-RENAL-022"},
            "keep",
            400.0,
            id="inducer-factor-then-moderate-renal-cap",
        ),
        pytest.param(
            {
                "hepatic.transaminases_xuln": 6.0,
                "dx.indication": "CML",
                "dx.cml_phase": "chronic",
                "regimen.daily_mg": 400.0,
                "heme.anc": 2.0,
                "heme.platelets": 200.0,
                "tdm.trough": 700.0,
                "renal.crcl": 90.0,
            },
            {"IMA-HTX-010", "IMA-TROUGH-050"},
            "withhold",
            None,
            id="hepatotoxicity-plus-low-trough-withhold-wins",
        ),
        pytest.param(
            {
                "dx.indication": "GIST",
                "regimen.daily_mg": 400.0,
                "heme.anc": 0.9,
                "heme.platelets": 200.0,
                "tdm.trough": 800.0,
            },
            {"IMA-HEME-010", "IMA-TROUGH-054"},
            "withhold",
            None,
            id="escalation-blocked-by-cytopenia",
        ),
    ],
)
def test_composer_resolves_the_named_conflicts(
    reference_engine: RuleEngine, facts: dict[str, object], fired: set[str], action: str, daily_mg: float | None
) -> None:
    decision = reference_engine.evaluate(facts, "order-sign")
    assert fired <= set(decision.fired_ids)
    assert not {"IMA-TROUGH-050", "IMA-TROUGH-052"} & set(decision.fired_ids) or action == "withhold"
    assert (decision.dose.action, decision.dose.daily_mg) == (action, daily_mg)
