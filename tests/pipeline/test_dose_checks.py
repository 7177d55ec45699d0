"""Ordered-dose checks and the PK proposal within the limits, through the whole pipeline.

The dose checks: a draft outside the label's range or not made of 100 mg and 400 mg tablets gets a critical card
that names the order (its facts table shows the draft MedicationRequest), an unusual start a warning. The PK
proposal: checked against limits computed here independently of the rules (renal class, chronic-phase CML,
label maximum).
"""

from __future__ import annotations

from typing import Any

import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import card_of_rule
from tests.pipeline.dose_variants import entries, load, set_dose, set_lab

DRAFT = "MedicationRequest/rx-ima-new"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def chronic_phase_start(daily_mg: float, per_day: int = 1) -> dict[str, Any]:
    """New chronic-phase CML start, normal renal function (CrCl 78 mL/min), dose as written by the prescriber."""
    request = load("order-sign-new-start-moderate-renal.json")
    set_lab(request, "lab-creat", 0.9)
    order = entries(request, "draftOrders")[0]
    set_dose(order, 400)
    dosage = order["dosageInstruction"][0]
    dosage["timing"]["repeat"]["frequency"] = per_day
    dosage["doseAndRate"][0]["doseQuantity"]["value"] = daily_mg / per_day
    return request


def cards_by_rule(outcome: Outcome) -> dict[str, dict[str, Any]]:
    return {spec.rule_id: card_of_rule(outcome, spec.rule_id) for spec in outcome.decision.cards}


@pytest.mark.parametrize(
    ("daily_mg", "per_day", "critical", "warning"),
    [
        (400, 1, set(), set()),
        (600, 1, set(), {"IMA-DOSE-020"}),  # an unusual chronic-phase start
        (800, 2, set(), {"IMA-DOSE-020"}),
        (1000, 1, {"IMA-DOSE-010"}, {"IMA-DOSE-020"}),  # above the labelled maximum
        (0, 1, {"IMA-DOSE-011"}, set()),
        (-400, 1, {"IMA-DOSE-012"}, set()),  # dropped as a fact, kept as a finding
        (1e6, 1, {"IMA-DOSE-012"}, set()),
        (250, 1, {"IMA-DOSE-013"}, {"IMA-DOSE-025"}),  # not whole 100 mg tablets, and below the start
        (300, 2, {"IMA-DOSE-013"}, {"IMA-DOSE-025"}),  # 150 mg twice daily
        (300, 1, set(), {"IMA-DOSE-025"}),  # below the 400 mg start with normal renal and liver function
    ],
)
def test_ordered_doses_outside_the_range_get_a_card_naming_the_order(
    pipeline: Pipeline, daily_mg: float, per_day: int, critical: set[str], warning: set[str]
) -> None:
    outcome = pipeline.run(chronic_phase_start(daily_mg, per_day), now=EXAMPLES_EVALUATION_TIME)
    specs = {s.rule_id: s for s in outcome.decision.cards}
    checks = {rid for rid in specs if rid.startswith("IMA-DOSE-0")}
    assert {rid for rid in checks if specs[rid].indicator == "critical"} == critical
    assert {rid for rid in checks if specs[rid].indicator == "warning"} == warning
    cards = cards_by_rule(outcome)
    sources = outcome.trace()["sources"]
    for rid in critical | warning:
        assert specs[rid].summary in cards[rid]["summary"] + cards[rid].get("detail", ""), f"{rid} is shown"
        # the order behind the dose is on the explanation page (the facts the rule used and their sources)
        assert any(DRAFT in s for found in sources.values() for s in found)


def renal_variant(example: str, creatinine: float, level: float | None = None) -> dict[str, Any]:
    request = load(example)
    set_lab(request, "lab-creat", creatinine)
    if level is not None:
        set_lab(request, "lvl-1", level)
    return request


def label_limit(facts: dict[str, Any]) -> float:
    """The highest daily dose the label allows, computed without the rules (clinical-rules.md §1.3, §1.9)."""
    renal = {"severe": 0.0, "moderate": 400.0, "mild": 600.0}
    limit = renal.get(str(facts.get("renal.impairment")), 800.0)
    if facts.get("dx.indication") == "CML" and facts.get("dx.cml_phase") in (None, "chronic", "unknown"):
        limit = min(limit, 600.0)
    return limit


LOW_TROUGH = "patient-view-low-trough-cml.json"  # CML chronic phase on 400 mg; trough 620 ng/mL (lvl-1)
VARIATIONS = [(creatinine, level) for creatinine in (0.7, 1.3, 2.2, 4.0) for level in (620, 850)]


@pytest.mark.parametrize(("creatinine", "level"), VARIATIONS)
def test_the_pk_proposal_never_exceeds_a_limit_another_rule_sets(
    pipeline: Pipeline, creatinine: float, level: float
) -> None:
    outcome = pipeline.run(renal_variant(LOW_TROUGH, creatinine, level), now=EXAMPLES_EVALUATION_TIME)
    facts = dict(outcome.decision.facts)
    fired = set(outcome.decision.fired_ids)
    proposed = facts.get("pk.proposed_daily_mg")
    if "IMA-TROUGH-041" in fired:
        assert isinstance(proposed, float) and proposed <= label_limit(facts)
        assert "IMA-DOSE-050" not in fired
    if "IMA-DOSE-050" in fired:
        assert isinstance(proposed, float) and proposed > label_limit(facts)


def test_the_low_trough_example_reaches_both_sides_of_the_limit(pipeline: Pipeline) -> None:
    """The property above is not vacuous: with these variations the proposal lands on each side of a limit."""
    fired: set[str] = set()
    for creatinine, level in VARIATIONS:
        outcome = pipeline.run(renal_variant(LOW_TROUGH, creatinine, level), now=EXAMPLES_EVALUATION_TIME)
        fired |= set(outcome.decision.fired_ids)
    assert {"IMA-DOSE-050", "IMA-TROUGH-041"} <= fired
