"""The scope stage: scope rules run first and keep adult dose rules from acting outside their population."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.engine.evaluate import RuleEngine
from cds.engine.ruleset import RuleSet, load_rules
from cds.engine.scope import NO_DOSE_ADVICE, NO_DOSE_INCREASE, gives_dose_advice, is_scope_rule, raises_dose
from cds.errors import RuleError
from tests.rules.planted import case, root_with, rule

ESCALATION = {
    "tdm.below_target": True,
    "dx.indication": "CML",
    "dx.cml_phase": "chronic",
    "regimen.daily_mg": 400.0,
    "heme.table1_cytopenia": False,
    "renal.crcl": 90.0,
}


@pytest.mark.parametrize(
    "rule_id, advice, increase",
    [
        ("IMA-HTX-010", False, False),  # withholding applies to everyone
        ("IMA-TROUGH-020", False, False),  # a card about the trough, no dose
        ("IMA-RENAL-021", True, False),  # an adult mg ceiling
        ("IMA-TROUGH-050", True, True),  # escalation
        ("IMA-CYP-010", True, True),  # +50% for an inducer
        ("IMA-TROUGH-041", True, True),  # shows the PK model's proposed dose
    ],
)
def test_dose_rules_are_classified(rule_set: RuleSet, rule_id: str, advice: bool, increase: bool) -> None:
    shipped = rule_set.rule(rule_id)
    assert (gives_dose_advice(shipped), raises_dose(shipped)) == (advice, increase)


def test_scope_rules_form_the_first_stage(durable_engine: RuleEngine) -> None:
    for hook in ("order-sign", "patient-view"):
        first, *later = durable_engine._plan[hook]
        assert first[0] and all(is_scope_rule(r) for r in first[0])
        assert not any(is_scope_rule(r) for rules, _ in later for r in rules)


@pytest.mark.parametrize("backend", ["durable", "reference"])
@pytest.mark.parametrize(
    "extra, because",
    [
        ({"patient.age": 17.0}, NO_DOSE_ADVICE),
        ({"patient.age": 30.0, "patient.pregnancy_status": "pregnant"}, NO_DOSE_INCREASE),
        ({"patient.age": 30.0, "patient.breastfeeding": True}, NO_DOSE_INCREASE),
    ],
)
def test_escalation_is_suppressed_and_recorded(
    rule_set: RuleSet, backend: str, extra: dict[str, object], because: str
) -> None:
    decision = RuleEngine(rule_set, backend=backend).evaluate({**ESCALATION, **extra}, "patient-view")
    assert "IMA-TROUGH-050" not in decision.fired_ids
    assert decision.dose.action == "none"
    (stopped,) = [s for s in decision.suppressed if s.rule_id == "IMA-TROUGH-050"]
    assert stopped.because == because
    assert stopped.scope_rules and all(r.startswith("IMA-SCOPE-") for r in stopped.scope_rules)


@pytest.mark.parametrize("age, escalates", [(18.0, True), (17.0, False)])
def test_adult_age_boundary(reference_engine: RuleEngine, age: float, escalates: bool) -> None:
    decision = reference_engine.evaluate({**ESCALATION, "patient.age": age}, "patient-view")
    assert (decision.dose.daily_mg == 600.0) is escalates
    assert bool(decision.suppressed) is not escalates


def test_pregnancy_keeps_reductions(reference_engine: RuleEngine) -> None:
    facts = {"patient.pregnancy_status": "pregnant", "renal.crcl": 30.0, "regimen.daily_mg": 600.0}
    decision = reference_engine.evaluate(facts, "order-sign")
    assert (decision.dose.action, decision.dose.daily_mg) == ("change", 400.0)
    assert not decision.suppressed


def test_a_child_is_still_withheld_for_hepatotoxicity(reference_engine: RuleEngine) -> None:
    facts = {"patient.age": 11.0, "hepatic.transaminases_xuln": 6.0, "regimen.daily_mg": 300.0}
    assert reference_engine.evaluate(facts, "order-sign").dose.action == "withhold"


def test_a_scope_rule_may_not_read_a_derived_fact(tmp_path: Path) -> None:
    planted = rule(
        "PL-SCOPE-001",
        "{eq: [tdm.below_target, true]}",
        "{derive: {scope.no_dose_advice: true}}",
        case("below", "{tdm.below_target: true}", "{fired: [PL-SCOPE-001]}")
        + case("on target", "{tdm.below_target: false}", "{not_fired: [PL-SCOPE-001]}"),
    )
    rule_set = load_rules(root_with(tmp_path, planted))
    with pytest.raises(RuleError, match="PL-SCOPE-001: a scope rule runs first"):
        RuleEngine(rule_set, backend="reference")
