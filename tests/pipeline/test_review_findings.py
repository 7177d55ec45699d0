"""Misses found by the independent pharmacist review of issues 12 and 13 (requests written from the reference
alone), each turned into a test on an edit of a shipped example."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from cds.pk.inputs import DoseHistory
from cds.pk.loglinear import loglinear_trough
from tests.fhir.helpers import add_observation, clone, example, find, observation, prefetch_entries

SNOMED = "http://snomed.info/sct"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
T0 = datetime(2026, 11, 1, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def run(pipeline: Pipeline, body: dict[str, Any]) -> Outcome:
    return pipeline.run(body, now=EXAMPLES_EVALUATION_TIME)


def condition(rid: str, code: str, display: str, text: str, onset: str, severity: str | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": text},
        "subject": {"reference": "Patient/pt-1"},
        "onsetDateTime": onset,
    }
    if severity:
        resource["severity"] = {"coding": [{"system": SNOMED, "code": "24484000", "display": severity}]}
    return resource


def test_a_severe_hepatitis_left_active_on_the_problem_list_does_not_override_recovered_liver_tests(
    pipeline: Pipeline,
) -> None:
    """r13-04: the resume order after a hepatotoxicity hold got a 'withhold' from the problem-list entry."""
    body = clone(example("order-sign-resume-after-hepatotoxicity.json"))
    hepatitis = condition(
        "cond-dili", "197354009", "Drug-induced hepatitis", "Imatinib hepatitis", "2026-10-28", "Severe"
    )
    hepatitis["subject"] = {"reference": f"Patient/{body['prefetch']['patient']['id']}"}
    prefetch_entries(body, "conditions").append({"resource": hepatitis})
    outcome = run(pipeline, body)
    fired = set(outcome.decision.fired_ids)
    assert not fired & {"IMA-NONHEME-010", "IMA-NONHEME-011"}
    assert outcome.decision.dose.action != "withhold"
    assert "IMA-HTX-020" in fired


def test_a_child_ordered_the_adult_advanced_dose_gets_the_paediatric_check_not_adult_cards(
    pipeline: Pipeline,
) -> None:
    """r13-08: an 11-year-old ordered 600 mg/day got the adult 'unusual start' and 'order creatinine' cards and
    nothing about 600 mg being above the label's 340 mg/m2."""
    body = clone(example("order-sign-child-bsa.json"))
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 6  # 6 x 100 mg tablets
    draft["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": "403878"}]}
    draft.pop("priorPrescription", None)
    meds = prefetch_entries(body, "medications")
    meds[:] = [e for e in meds if e["resource"]["resourceType"] != "MedicationRequest"]  # a new start
    outcome = run(pipeline, body)
    fired = set(outcome.decision.fired_ids)
    assert outcome.decision.facts["regimen.daily_mg"] == 600.0 and outcome.decision.facts["regimen.new_start"]
    assert "IMA-SCOPE-013" in fired
    assert not fired & {"IMA-DOSE-020", "IMA-DOSE-021", "IMA-DOSE-023", "IMA-RENAL-040"}
    assert outcome.decision.dose.action == "none"


@pytest.mark.parametrize("unit", ["10*9/L", "Gpt/L"])
def test_an_increase_signed_while_the_newest_count_cannot_be_read_is_not_passed_silently(
    pipeline: Pipeline, unit: str
) -> None:
    """r12-05: a 400 -> 600 mg draft with the ANC in a unit the service does not know got no card about the
    increase (only the unreadable-result cards)."""
    body = clone(example("order-sign-renewal-with-active-order.json"))
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft.pop("priorPrescription", None)
    draft["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": "403878"}]}  # 6 x 100 mg
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 6
    patient = body["prefetch"]["patient"]["id"]
    add_observation(body, observation("anc-new", patient, "751-8", 2.4, unit, "2026-11-24T08:00:00Z"))
    outcome = run(pipeline, body)
    assert outcome.decision.facts["regimen.draft_increase"] is True
    fired = set(outcome.decision.fired_ids)
    assert ("IMA-UNREAD-050" in fired) is (unit == "Gpt/L")


def test_an_escalation_signed_with_a_stale_creatinine_reads_the_trough_on_the_interval_it_was_drawn_on(
    pipeline: Pipeline,
) -> None:
    """r13-13: a 400 mg once-daily trough was corrected with the 12 h interval of the 800 mg twice-daily draft
    (1350 ng/mL at 23.75 h became a 'trough' above it), and a 12-day-old creatinine dropped renal function without
    a card while the increase was signed."""
    body = clone(example("order-sign-twice-daily-800mg.json"))
    find(body, "Observation", "lab-creat")["effectiveDateTime"] = "2026-11-13T08:00:00Z"
    outcome = run(pipeline, body)
    facts = outcome.decision.facts
    assert "renal.crcl" not in facts
    assert facts["pk.loglinear_cmin"] == pytest.approx(loglinear_trough(1350, 23.75, 24), abs=0.1)
    assert facts["pk.loglinear_cmin"] < 1350
    assert "IMA-GATE-011" in outcome.decision.fired_ids


def test_the_interval_a_level_was_drawn_on_comes_from_the_doses_before_it() -> None:
    history = DoseHistory(T0, np.array([0.0, 24.0, 48.0, 96.0]), np.array([400.0] * 4))
    assert history.interval_before(100.0, 12.0) == 24.0  # the missed dose at 72 h only lengthens a gap
    assert history.interval_before(10.0, 12.0) == 12.0  # one dose before it: the regimen's own interval


@pytest.mark.parametrize(("drawn", "before"), [("2026-11-09T07:45:00Z", True), ("2026-11-24T07:45:00Z", False)])
def test_a_trough_drawn_before_the_inducer_began_does_not_hold_back_the_increase(
    pipeline: Pipeline, drawn: str, before: bool
) -> None:
    """r13-01: a trough on target from before rifampin was started made the service 'guide by trough' and hold the
    dose, although induction lowers the level about 70% from then on. Here rifampin runs since 10 November."""
    body = clone(example("order-sign-rifampin-coprescribed.json"))
    rifampin = body["context"].pop("draftOrders")["entry"][0]["resource"]
    rifampin.update(status="active", authoredOn="2026-11-10")
    prefetch_entries(body, "medications").append({"resource": rifampin})
    body["hook"] = "patient-view"
    patient = body["prefetch"]["patient"]["id"]
    add_observation(body, observation("lvl-old", patient, "57844-3", 1138, "ng/mL", drawn))
    outcome = run(pipeline, body)
    assert outcome.decision.facts["level.before_interacting_drug"] is before
    fired = set(outcome.decision.fired_ids)
    assert ("IMA-CYP-010" in fired) is before and ("IMA-CYP-011" in fired) is not before
