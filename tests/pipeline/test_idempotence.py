"""Idempotent dose suggestions: a suggestion accepted and signed again never changes the dose a second time.

For every example request and systematic variations of ordered dose, CrCl, hepatic function, a strong CYP3A4
inducer and a hold with its reason, the update suggestion is applied to the draft exactly as an EHR would (the
resource cds/cards/orders.py built replaces the draft) and the request is evaluated again: the dose is then
kept (or there is nothing to do), and no suggestion moves it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.pipeline.dose_variants import Variant, all_variants, apply_actions, apply_medication_only

VARIANTS = all_variants()


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def updates(outcome: Outcome) -> list[Sequence[Mapping[str, Any]]]:
    """The actions of every suggestion that rewrites a draft imatinib order (with the deletes of the other drafts)."""
    return [
        suggestion["actions"]
        for card in outcome.cards
        for suggestion in card.get("suggestions", [])
        if any(
            a["type"] == "update" and a["resource"]["resourceType"] == "MedicationRequest"
            for a in suggestion["actions"]
        )
    ]


def test_the_variations_reach_every_dose_rule(pipeline: Pipeline) -> None:
    """The property below is not vacuous: the variations make every rule with a dose effect suggest a change."""
    suggested = set()
    for variant in VARIANTS:
        outcome = pipeline.run(variant.request, now=EXAMPLES_EVALUATION_TIME)
        if updates(outcome):
            suggested |= {spec.rule_id for spec in outcome.decision.cards if spec.topic == "dose"}
    expected = {"IMA-RENAL-020", "IMA-HEP-010", "IMA-CYP-010", "IMA-HTX-020", "IMA-HEME-011", "IMA-NONHEME-020"}
    expected |= {"IMA-RENAL-010", "IMA-RENAL-021"}
    assert expected <= suggested


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_an_accepted_suggestion_signed_again_keeps_its_dose(pipeline: Pipeline, variant: Variant) -> None:
    first = pipeline.run(variant.request, now=EXAMPLES_EVALUATION_TIME)
    offered = updates(first)
    if not offered:
        return
    dose = first.decision.dose
    assert dose.action == "change" and dose.daily_mg is not None
    for actions in offered:  # every update carries the one composed dose; accept it
        again = pipeline.run(apply_actions(variant.request, actions), now=EXAMPLES_EVALUATION_TIME)
        assert again.decision.facts.get("regimen.daily_mg") == dose.daily_mg, "the rewritten order reads back"
        assert again.decision.dose.action in ("keep", "none"), [s.text for s in again.decision.dose.steps]
        assert updates(again) == []
        assert "IMA-REGIMEN-020" not in again.decision.fired_ids  # the text we wrote agrees with its dose fields


def test_a_suggestion_applied_in_part_is_named_before_signing(pipeline: Pipeline) -> None:
    """A client that takes only the suggested medication (and its text) keeps the old dose fields: when they then
    give another dose than the suggestion, the next call says so instead of letting it be signed silently."""
    wrong, named = [], []
    for variant in VARIANTS:
        first = pipeline.run(variant.request, now=EXAMPLES_EVALUATION_TIME)
        for actions in updates(first):
            again = pipeline.run(apply_medication_only(variant.request, actions), now=EXAMPLES_EVALUATION_TIME)
            if again.decision.facts.get("regimen.daily_mg") != first.decision.dose.daily_mg:
                wrong.append(variant.name)
                if "IMA-REGIMEN-020" in again.decision.fired_ids:
                    named.append(variant.name)
    assert len(wrong) >= 5  # not vacuous: product switches do leave other doses behind
    assert named == wrong
