"""End to end: split regimens meet the renal ceilings, suggestions rewrite several drafts coherently, duplicates are
named on a card, and renal function from eGFR classifies on both sides of the label thresholds (issue 12)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import ROOT, card_of_rule, dose_suggestion
from tests.fhir.helpers import example, find
from tests.pipeline.dose_variants import apply_actions

SPLIT = "order-sign-split-600mg-moderate-renal.json"
EGFR = "order-sign-new-start-egfr-only.json"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(ROOT / "rules")


def run(pipeline: Pipeline, body: dict[str, Any]) -> Outcome:
    return pipeline.run(body, now=EXAMPLES_EVALUATION_TIME)


def card(outcome: Outcome, rule: str) -> dict[str, Any]:
    return card_of_rule(outcome, rule)


def test_the_split_regimen_meets_the_moderate_renal_ceiling(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example(SPLIT))
    assert outcome.decision.facts["regimen.daily_mg"] == 600.0  # read as 400 before: the ceiling was missed
    assert {"IMA-REGIMEN-001", "IMA-RENAL-021"} <= set(outcome.decision.fired_ids)
    assert (outcome.decision.dose.action, outcome.decision.dose.daily_mg) == ("change", 400)
    # the card on the dose says the orders were added up; the orders themselves are on the explanation page
    assert "several orders taken together" in card(outcome, "IMA-REGIMEN-001")["detail"]
    (spec,) = [c for c in outcome.decision.cards if c.rule_id == "IMA-REGIMEN-001"]
    assert "draft imatinib 400 MG Oral Tablet 400 mg/day" in spec.detail  # orders as the prescriber knows them
    assert "draft imatinib 100 MG Oral Tablet 200 mg/day" in spec.detail and "MedicationRequest/" not in spec.detail
    assert outcome.trace()["dose_history"]["drafts"] == list(outcome.record.draft_parts)


def test_accepting_the_suggestion_yields_exactly_the_suggested_regimen(pipeline: Pipeline) -> None:
    body = example(SPLIT)
    outcome = run(pipeline, body)
    suggestion = dose_suggestion(card(outcome, "IMA-RENAL-021"))
    kinds = [(a["type"], a.get("resourceId") or a["resource"]["id"]) for a in suggestion["actions"]]
    assert kinds == [("delete", "MedicationRequest/rx-ima-2x100"), ("update", "rx-ima-400")]
    after = run(pipeline, apply_actions(body, suggestion["actions"]))
    assert after.decision.facts["regimen.daily_mg"] == outcome.decision.dose.daily_mg == 400
    assert "IMA-RENAL-021" not in after.decision.fired_ids


def test_a_possible_duplicate_gets_a_card_naming_both_orders(pipeline: Pipeline) -> None:
    body = copy.deepcopy(example(SPLIT))
    twin = copy.deepcopy(body["context"]["draftOrders"]["entry"][0])
    twin["resource"]["id"] = "rx-ima-400-again"
    body["context"]["draftOrders"]["entry"][1] = twin
    outcome = run(pipeline, body)
    assert outcome.decision.facts["regimen.daily_mg"] == 400.0  # counted once, never silently 800
    warning = card(outcome, "IMA-REGIMEN-010")
    assert warning["indicator"] == "warning"
    assert "draft imatinib 400 MG Oral Tablet and draft imatinib 400 MG Oral Tablet" in warning["detail"]


# --- eGFR ---------------------------------------------------------------------------------------------------


def egfr_body(value: float, *, height: bool = True) -> dict[str, Any]:
    body = copy.deepcopy(example(EGFR))
    find(body, "Observation", "lab-egfr")["valueQuantity"]["value"] = value
    if not height:
        entries = body["prefetch"]["observations"]["entry"]
        body["prefetch"]["observations"]["entry"] = [e for e in entries if e["resource"]["id"] != "ht-1"]
    return body


def test_a_new_start_with_only_egfr_is_classified_not_told_to_order_creatinine(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example(EGFR))
    fired = set(outcome.decision.fired_ids)
    assert "IMA-RENAL-040" not in fired
    assert {"IMA-RENAL-060", "IMA-RENAL-002", "IMA-RENAL-020"} <= fired
    assert outcome.decision.derived["renal.impairment"] == "moderate"
    caveat = card(outcome, "IMA-RENAL-060")
    assert "eGFR 25 mL/min/1.73 m2" in caveat["detail"] and "Cockcroft-Gault" in caveat["detail"]
    # the dose card states the CrCl it classified; that it came from eGFR is the caveat card's finding (issue 14:
    # no internal method codes or rule ids in the dose card's text)
    assert "Renal function from eGFR" in caveat["summary"]
    assert "Creatinine clearance 24 mL/min" in card(outcome, "IMA-RENAL-020")["detail"]


def test_with_the_policy_off_the_new_start_asks_for_creatinine(pipeline: Pipeline) -> None:
    off = Pipeline(ROOT / "rules")
    off.settings = replace(off.settings, egfr_as_crcl=False)
    fired = set(run(off, example(EGFR)).decision.fired_ids)
    assert "IMA-RENAL-040" in fired and not fired & {"IMA-RENAL-060", "IMA-RENAL-061", "IMA-RENAL-002"}


# De-indexed (height known): BSA sqrt(165 cm x 60 kg / 3600) = 1.6583 m2, CrCl = eGFR x 1.6583 / 1.73, card
# IMA-RENAL-060; as reported (no height): CrCl = eGFR, card IMA-RENAL-061.
@pytest.mark.parametrize(
    ("height", "egfr", "impairment"),
    [
        pytest.param(True, 62.5, "mild", id="de-indexed 59.9 mild"),
        pytest.param(True, 62.7, "none", id="de-indexed 60.1 none"),
        pytest.param(True, 41.7, "moderate", id="de-indexed 39.97 moderate"),
        pytest.param(True, 41.8, "mild", id="de-indexed 40.07 mild"),
        pytest.param(True, 20.8, "severe", id="de-indexed 19.94 severe"),
        pytest.param(True, 20.9, "moderate", id="de-indexed 20.03 moderate"),
        pytest.param(False, 59.9, "mild", id="as reported 59.9"),
        pytest.param(False, 60, "none", id="as reported 60"),
        pytest.param(False, 39.9, "moderate", id="as reported 39.9"),
        pytest.param(False, 40, "mild", id="as reported 40"),
        pytest.param(False, 19.9, "severe", id="as reported 19.9"),
        pytest.param(False, 20, "moderate", id="as reported 20"),
    ],
)
def test_egfr_on_both_sides_of_the_label_thresholds(
    pipeline: Pipeline, height: bool, egfr: float, impairment: str
) -> None:
    outcome = run(pipeline, egfr_body(egfr, height=height))
    assert outcome.decision.derived["renal.impairment"] == impairment
    cards = {"IMA-RENAL-060", "IMA-RENAL-061"} & set(outcome.decision.fired_ids)
    assert cards == ({"IMA-RENAL-060"} if height else {"IMA-RENAL-061"})


def test_identical_active_orders_get_the_duplicate_card_on_patient_view(pipeline: Pipeline) -> None:
    body = copy.deepcopy(example("patient-view-low-trough-cml.json"))
    entries = body["prefetch"]["medications"]["entry"]
    twin = copy.deepcopy(entries[0])
    twin["resource"]["id"] = "rx-ima-twin"
    entries.append(twin)
    outcome = run(pipeline, body)
    assert outcome.decision.facts["regimen.daily_mg"] == 400.0
    # the duplicate is one line on the card that changes the dose; its rule text (on the explanation page) names both
    assert "- Possible duplicate imatinib order" in card(outcome, "IMA-REGIMEN-010")["detail"]
    (spec,) = [s for s in outcome.decision.cards if s.rule_id == "IMA-REGIMEN-010"]
    assert "active order imatinib 400 MG Oral Tablet of 1 May 2026 and active order" in spec.detail


@pytest.mark.parametrize(("comparator", "egfr"), [(">", 90), ("<", 15), (">", 30)])
def test_an_egfr_given_as_a_bound_is_not_used_as_crcl_and_the_card_says_so(
    pipeline: Pipeline, comparator: str, egfr: float
) -> None:
    body = egfr_body(egfr)
    find(body, "Observation", "lab-egfr")["valueQuantity"]["comparator"] = comparator
    outcome = run(pipeline, body)
    assert "renal.crcl" not in outcome.decision.facts and "renal.impairment" not in outcome.decision.derived
    assert {"IMA-UNREAD-043", "IMA-RENAL-040"} <= set(outcome.decision.fired_ids)  # a new start: order creatinine
