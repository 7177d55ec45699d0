"""Facts the scope, gate and inducer rules read (issue 13): pregnancy and breastfeeding status, Cockcroft-Gault in
children, the last dose change and its reason, inducer context, and consistent dose-history and level horizons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds.errors import RuleError
from cds.fhir.settings import load_settings
from tests.fhir.helpers import LOINC, RXNORM, add_observation, clone, example, find, values_of

SCT = "http://snomed.info/sct"
PREGNANT = "patient-view-pregnant-low-trough.json"


def _status(answer: dict[str, Any], when: str = "2026-11-22T09:00:00Z") -> dict[str, Any]:
    body = clone(example(PREGNANT))
    obs = find(body, "Observation", "preg-status")
    obs["valueCodeableConcept"], obs["effectiveDateTime"] = answer, when
    return body


def test_pregnancy_status_observation() -> None:
    assert values_of(example(PREGNANT))["patient.pregnancy_status"] == "pregnant"


def test_not_pregnant_is_not_read_as_pregnant_by_its_name() -> None:
    body = _status({"coding": [{"system": SCT, "code": "60001007", "display": "Not pregnant"}], "text": "Not pregnant"})
    assert values_of(body)["patient.pregnancy_status"] == "not-pregnant"


def test_unknown_status_gives_no_fact() -> None:
    body = _status({"coding": [{"system": SCT, "code": "261665006", "display": "Unknown"}]})
    assert "patient.pregnancy_status" not in values_of(body)


@pytest.mark.parametrize("when, known", [("2026-10-26T12:00:00Z", True), ("2026-10-25T11:00:00Z", False)])
def test_a_status_older_than_30_days_is_not_current(when: str, known: bool) -> None:
    body = _status({"coding": [{"system": SCT, "code": "77386006"}]}, when)
    assert ("patient.pregnancy_status" in values_of(body)) is known


def test_pregnancy_condition_and_a_newer_negative_observation() -> None:
    body = clone(example(PREGNANT))
    cond = clone(find(body, "Condition", "cond-cml"))
    cond.update(id="cond-preg", code={"coding": [{"system": SCT, "code": "77386006"}]}, onsetDateTime="2026-10-01")
    del cond["stage"]
    body["prefetch"]["conditions"]["entry"].append({"resource": cond})
    find(body, "Observation", "preg-status")["valueCodeableConcept"] = {"coding": [{"system": SCT, "code": "60001007"}]}
    assert values_of(body)["patient.pregnancy_status"] == "not-pregnant"  # the later statement wins
    body["prefetch"]["observations"]["entry"] = [
        e for e in body["prefetch"]["observations"]["entry"] if e["resource"]["id"] != "preg-status"
    ]
    assert values_of(body)["patient.pregnancy_status"] == "pregnant"
    cond["verificationStatus"]["coding"][0]["code"] = "refuted"
    assert "patient.pregnancy_status" not in values_of(body)


def test_breastfeeding_observation() -> None:
    body = clone(example(PREGNANT))
    obs = {
        "resourceType": "Observation",
        "id": "bf",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "63895-7"}]},
        "subject": {"reference": "Patient/pt-pregnant"},
        "effectiveDateTime": "2026-11-20T09:00:00Z",
        "valueBoolean": True,
    }
    add_observation(body, obs)
    assert values_of(body)["patient.breastfeeding"] is True


@pytest.mark.parametrize("birth, computed", [("2008-11-25", True), ("2008-11-26", False)])
def test_cockcroft_gault_only_from_18_years(birth: str, computed: bool) -> None:
    body = clone(example("order-sign-child-bsa.json"))
    find(body, "Patient", "pt-child")["birthDate"] = birth
    facts = values_of(body)
    assert ("renal.crcl" in facts) is computed
    assert facts["patient.age"] == (18.0 if computed else 17.0)


def test_last_change_and_its_reason() -> None:
    facts = values_of(example("patient-view-trough-after-toxicity-reduction.json"))
    assert facts["regimen.last_change"] == "reduction"
    assert facts["regimen.last_change_reason"] == "non-haematological"
    assert facts["regimen.previous_daily_mg"] == 600.0


def test_no_reason_recorded_gives_no_reason_fact() -> None:
    body = clone(example("patient-view-trough-after-toxicity-reduction.json"))
    del find(body, "MedicationRequest", "rx-ima-600")["statusReason"]
    facts = values_of(body)
    assert facts["regimen.last_change"] == "reduction" and "regimen.last_change_reason" not in facts


def test_st_johns_wort_is_an_avoidable_inducer() -> None:
    facts = values_of(example("patient-view-st-johns-wort.json"))
    assert facts["comed.avoidable_inducer_name"] == "St John's wort"
    assert "comed.unavoidable_inducer_name" not in facts


def _dexamethasone(repeat: dict[str, Any], status: str = "draft") -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "rx-dex",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}]},
        "subject": {"reference": "Patient/pt-sjw"},
        "authoredOn": "2026-11-25",
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", **repeat}}}],
    }


def _without_sjw(order: dict[str, Any], as_draft: bool) -> dict[str, Any]:
    body = clone(example("patient-view-st-johns-wort.json"))
    meds = body["prefetch"]["medications"]["entry"]
    meds[:] = [e for e in meds if e["resource"]["id"] != "ms-sjw"]
    if as_draft:
        body["hook"] = "order-sign"
        body["context"]["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": order}],
        }
    else:
        meds.append({"resource": order})
    return body


@pytest.mark.parametrize(
    "repeat, days",
    [
        ({"boundsDuration": {"value": 3, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}, 3.0),
        ({"boundsPeriod": {"start": "2026-11-25T12:00:00Z", "end": "2026-12-09T12:00:00Z"}}, 14.0),
        # a date-only end includes that day (FHIR Period): 26, 27 and 28 November are a 3-day course
        ({"boundsPeriod": {"start": "2026-11-26", "end": "2026-11-28"}}, 3.0),
        ({}, None),
    ],
)
def test_planned_course_of_a_prescribed_inducer(repeat: dict[str, Any], days: float | None) -> None:
    facts = values_of(_without_sjw(_dexamethasone(repeat), as_draft=True))
    assert facts["comed.unavoidable_inducer_name"] == "dexamethasone"
    assert facts.get("comed.inducer_course_days") == days


def test_a_stopped_inducer_and_when() -> None:
    order = _dexamethasone({"boundsPeriod": {"start": "2026-11-01", "end": "2026-11-15T12:00:00Z"}}, status="completed")
    facts = values_of(_without_sjw(order, as_draft=False))
    assert facts["comed.stopped_inducer_name"] == "dexamethasone"
    assert facts["comed.inducer_stopped_days"] == 10.0
    assert "comed.unavoidable_inducer_name" not in facts


def test_an_old_level_has_the_doses_before_it() -> None:
    """A level about 100 days old lies inside both horizons: its dose time is known (it was 'record the dose time')."""
    body = clone(example("patient-view-low-trough-cml.json"))
    find(body, "Observation", "lvl-1")["effectiveDateTime"] = "2026-08-17T19:30:00Z"
    facts = values_of(body)
    assert facts["level.age_days"] == pytest.approx(99.69, abs=0.01)
    assert facts["level.hours_after_dose"] == 23.5


@pytest.mark.parametrize("history, ok", [(181, True), (180, False)])
def test_dose_history_must_reach_past_the_oldest_level(tmp_path: Path, history: int, ok: bool) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(f"max_age_days: {{level.conc: 180}}\ndose_history_days: {history}\n", encoding="utf-8")
    if ok:
        assert load_settings(path).dose_history_days == history
    else:
        with pytest.raises(RuleError, match="must reach past the oldest accepted level"):
            load_settings(path)
