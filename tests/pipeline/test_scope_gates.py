"""Scope, gates, inducer context and baseline transaminases end to end (issue 13), on the fhir_examples requests
and on edits of them that move one fact across a boundary."""

from __future__ import annotations

from typing import Any

import pytest

from cds.paediatric import paediatric_facts
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.fhir.helpers import add_observation, clone, example, find, observation


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def run(pipeline: Pipeline, body: dict[str, Any]) -> Outcome:
    return pipeline.run(body, now=EXAMPLES_EVALUATION_TIME)


def test_child_trace_shows_the_scope_decision(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example("order-sign-child-bsa.json"))
    scope = outcome.trace()["scope"]
    assert scope["facts"] == {"scope.no_dose_advice": True}
    assert scope["decided_by"] == ["IMA-SCOPE-010"]
    facts = outcome.decision.facts
    assert (facts["paediatric.label_daily_mg"], facts["paediatric.earlier_label_daily_mg"]) == (421.0, 322.0)
    assert "renal.crcl" not in facts
    assert outcome.decision.dose.action == "none"
    shown = " ".join(c["summary"] + c.get("detail", "") for c in outcome.cards)  # a 4th topic is an "Also" line
    summaries = " ".join(c["summary"] for c in outcome.cards)
    assert "322-421 mg/day" in shown and "600 mg" not in summaries.replace("max 600 mg", "")


def test_a_child_with_a_measured_clearance_is_not_escalated_and_the_trace_says_why(pipeline: Pipeline) -> None:
    body = clone(example("order-sign-child-bsa.json"))
    add_observation(body, observation("crcl", "pt-child", "2164-2", 95.0, "mL/min", "2026-11-24T08:30:00Z"))
    outcome = run(pipeline, body)
    assert outcome.decision.facts["renal.crcl"] == 95.0
    suppressed = outcome.trace()["scope"]["suppressed"]
    assert {"rule": "IMA-TROUGH-050", "because": "scope.no_dose_advice", "by": ["IMA-SCOPE-010"]} in suppressed
    assert outcome.decision.dose.action == "none"


def test_the_same_patient_at_18_gets_adult_advice(pipeline: Pipeline) -> None:
    body = clone(example("order-sign-child-bsa.json"))
    find(body, "Patient", "pt-child")["birthDate"] = "2008-11-25"
    outcome = run(pipeline, body)
    assert outcome.trace()["scope"]["suppressed"] == []
    assert "paediatric.label_daily_mg" not in outcome.decision.facts
    assert "renal.crcl" in outcome.decision.facts


@pytest.mark.parametrize(
    "age, bsa, expected",
    [
        (17.0, 1.0, {"paediatric.label_daily_mg": 340.0, "paediatric.earlier_label_daily_mg": 260.0}),
        (17.0, 2.0, {"paediatric.label_daily_mg": 600.0, "paediatric.earlier_label_daily_mg": 520.0}),  # cap 600
        (18.0, 1.0, {}),
        (17.0, None, {}),
    ],
)
def test_paediatric_dose_for_bsa(pipeline: Pipeline, age: float, bsa: float | None, expected: dict[str, float]) -> None:
    facts = {"patient.age": age, **({"patient.bsa": bsa} if bsa is not None else {})}
    assert paediatric_facts(facts, pipeline.rule_set.policy) == expected


def test_pregnancy_stops_the_escalation_the_same_woman_would_get(pipeline: Pipeline) -> None:
    pregnant = run(pipeline, example("patient-view-pregnant-low-trough.json"))
    assert pregnant.decision.dose.action == "none"
    # the model proposes 800 mg, above the chronic-phase ceiling: IMA-DOSE-050 (not IMA-TROUGH-041) would show it
    assert {s.rule_id for s in pregnant.decision.suppressed} == {"IMA-DOSE-050", "IMA-TROUGH-050"}
    body = clone(example("patient-view-pregnant-low-trough.json"))
    obs = find(body, "Observation", "preg-status")
    obs["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": "60001007"}]}
    not_pregnant = run(pipeline, body)
    assert (not_pregnant.decision.dose.action, not_pregnant.decision.dose.daily_mg) == ("change", 600.0)


def test_trough_after_a_reduction_for_toxicity_is_not_re_escalated(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example("patient-view-trough-after-toxicity-reduction.json"))
    assert "IMA-GATE-030" in outcome.decision.fired_ids
    assert outcome.decision.dose.action == "none"


def test_a_reduction_for_another_reason_escalates_on_the_estimate_and_says_so(pipeline: Pipeline) -> None:
    body = clone(example("patient-view-trough-after-toxicity-reduction.json"))
    find(body, "MedicationRequest", "rx-ima-600")["statusReason"] = {"text": "patient preference"}
    outcome = run(pipeline, body)
    fired = set(outcome.decision.fired_ids)
    assert "IMA-GATE-030" not in fired
    assert {"IMA-TROUGH-050", "IMA-GATE-021"} <= fired  # the card says the estimate spans the change
    assert outcome.decision.dose.daily_mg == 600.0


def test_without_the_doses_before_the_change_the_estimate_does_not_escalate(pipeline: Pipeline) -> None:
    body = clone(example("patient-view-trough-after-toxicity-reduction.json"))
    old = find(body, "MedicationRequest", "rx-ima-600")
    old["statusReason"] = {"text": "patient preference"}
    del old["dosageInstruction"][0]["timing"]["repeat"]["timeOfDay"]  # its doses have no clock time
    outcome = run(pipeline, body)
    assert outcome.decision.facts["dosing.history_covers_change"] is False
    assert "IMA-GATE-020" in outcome.decision.fired_ids
    assert outcome.decision.dose.action == "none"


def test_escalation_waits_for_a_recent_creatinine(pipeline: Pipeline) -> None:
    body = clone(example("patient-view-pregnant-low-trough.json"))
    find(body, "Observation", "preg-status")["valueCodeableConcept"] = {
        "coding": [{"system": "http://snomed.info/sct", "code": "60001007"}]
    }
    find(body, "Observation", "lab-creat")["effectiveDateTime"] = "2026-11-13T12:00:00Z"  # 12 days old
    outcome = run(pipeline, body)
    assert "renal.crcl" not in outcome.decision.facts
    assert "IMA-GATE-010" in outcome.decision.fired_ids
    assert outcome.decision.dose.action == "none"


def test_st_johns_wort_is_stopped_and_rifampin_compensated(pipeline: Pipeline) -> None:
    sjw = run(pipeline, example("patient-view-st-johns-wort.json"))
    assert "IMA-CYP-012" in sjw.decision.fired_ids and sjw.decision.dose.action == "none"
    body = clone(example("patient-view-st-johns-wort.json"))
    find(body, "MedicationStatement", "ms-sjw")["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "9384", "display": "rifampin"}]
    }
    rifampin = run(pipeline, body)
    assert "IMA-CYP-010" in rifampin.decision.fired_ids
    assert rifampin.decision.dose.daily_mg == 600.0


@pytest.mark.parametrize("alt, withheld", [(205.0, False), (206.0, True)])  # ULN 41: 5.0x and 5.02x
def test_new_start_transaminase_boundary(pipeline: Pipeline, alt: float, withheld: bool) -> None:
    body = clone(example("order-sign-new-start-alt-8x.json"))
    find(body, "Observation", "lab-alt")["valueQuantity"]["value"] = alt
    outcome = run(pipeline, body)
    assert ("IMA-HEP-012" in outcome.decision.fired_ids) is withheld
    assert (outcome.decision.dose.action == "withhold") is withheld


@pytest.mark.parametrize(("ordered", "above"), [(340.0, False), (341.0, True)])
def test_an_order_above_the_paediatric_label_dose(pipeline: Pipeline, ordered: float, above: bool) -> None:
    facts = {"patient.age": 11.0, "patient.bsa": 1.0, "regimen.daily_mg": ordered}
    assert paediatric_facts(facts, pipeline.rule_set.policy)["paediatric.above_label_dose"] is above
