"""The same clinical fact, encoded the ways real EHRs send it, gives the same facts and the same decision.

Condition status (remission is not the end of a diagnosis), CML phase (a code on the stage or the condition, or
only text) and adverse-event severity (CTCAE grade code, SNOMED CT Condition.severity, AdverseEvent severity or
seriousness); and what cannot be read is reported, never dropped (clinical-rules.md §9.1).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds.errors import RuleError
from cds.fhir import extract_record, parse_request
from cds.fhir.record import default_terminology
from cds.fhir.request_text import LABEL_MAX, plain_label
from cds.fhir.settings import RULES_DIR, load_settings
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from tests.conftest import card_of_rule
from tests.fhir.helpers import NOW, clone, example, find, observation, record_of, values_of

SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOCAL = "http://imatinib-cds.example.org/CodeSystem/local"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
PHASE_TEXT = "patient-view-cml-phase-in-text-anc-low.json"  # CML, ANC 0.35
SEVERE_OEDEMA = "patient-view-gist-snomed-severe-oedema.json"
REMISSION = "patient-view-cml-remission-low-trough.json"
NO_PHASE = "patient-view-cml-no-phase-platelets-40.json"

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def decision(pipeline: Pipeline, body: dict[str, Any]) -> tuple[list[str], str, float | None]:
    outcome = pipeline.run(json.dumps(body).encode(), now=EXAMPLES_EVALUATION_TIME)
    dose = outcome.decision.dose
    return sorted(outcome.decision.fired_ids), dose.action, dose.daily_mg


def edited(name: str, edit: Edit) -> dict[str, Any]:
    body = clone(example(name))
    edit(body)
    return body


# --- CML phase ------------------------------------------------------------------------------------


def _cml(body: dict[str, Any]) -> dict[str, Any]:
    return find(body, "Condition", "cond-cml")


def _plain_cml_code(body: dict[str, Any]) -> None:
    _cml(body)["code"] = {"coding": [{"system": SNOMED, "code": "92818009", "display": "Chronic myeloid leukemia"}]}


def _stage_code(body: dict[str, Any]) -> None:
    _plain_cml_code(body)
    _cml(body)["stage"] = [{"summary": {"coding": [{"system": SNOMED, "code": "278177007"}]}}]


def _stage_type_local_code(body: dict[str, Any]) -> None:
    _plain_cml_code(body)
    _cml(body)["stage"] = [{"type": {"coding": [{"system": LOCAL, "code": "cml-chronic-phase"}]}}]


def _code_on_condition(body: dict[str, Any]) -> None:
    _plain_cml_code(body)
    _cml(body)["code"]["coding"].append({"system": SNOMED, "code": "278177007"})


def _stage_text(body: dict[str, Any]) -> None:
    _plain_cml_code(body)
    _cml(body)["stage"] = [{"summary": {"text": "Chronic Phase"}}]


def _code_text_abbreviation(body: dict[str, Any]) -> None:
    _plain_cml_code(body)
    _cml(body)["code"]["text"] = "CML-CP, Ph+ (BCR-ABL1 p210)"


def _display_only(body: dict[str, Any]) -> None:
    _cml(body)["code"] = {"coding": [{"system": SNOMED, "code": "92818009", "display": "CML in chronic phase"}]}


def _separate_observation(body: dict[str, Any]) -> None:
    _plain_cml_code(body)
    phase = observation("obs-phase", "pt-cml-text", "x", 0, "1", "2026-11-01T08:00:00Z")
    del phase["valueQuantity"]
    phase["code"] = {"text": "CML disease phase"}
    phase["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": "278177007", "display": "Chronic phase"}]}
    body["prefetch"]["observations"]["entry"].append({"resource": phase})


PHASE_ENCODINGS = {
    "code on stage.summary": (_stage_code, "code on Condition.stage.summary"),
    "configured local code on stage.type": (_stage_type_local_code, "code on Condition.stage.type"),
    "phase code on Condition.code": (_code_on_condition, "code on Condition.code"),
    "stage.summary.text only": (_stage_text, "text of Condition.stage.summary"),
    "abbreviation in Condition.code.text": (_code_text_abbreviation, "text of Condition.code"),
    "display of the diagnosis coding": (_display_only, "display of Condition.code"),
    "separate Observation": (_separate_observation, "code on Observation.value"),
    "diagnosis text as sent": (lambda body: None, "text of Condition.code"),
}


@pytest.mark.parametrize("encoding", sorted(PHASE_ENCODINGS))
def test_chronic_phase_encodings_give_the_same_facts_and_withhold(pipeline: Pipeline, encoding: str) -> None:
    edit, how = PHASE_ENCODINGS[encoding]
    body = edited(PHASE_TEXT, edit)
    fact = record_of(body).facts["dx.cml_phase"]
    assert (fact.value, fact.note) == ("chronic", f"matched by {how}")
    fired, action, _ = decision(pipeline, body)
    assert action == "withhold" and "IMA-HEME-010" in fired
    assert "IMA-UNREAD-005" not in fired and "IMA-DATA-002" not in fired
    assert fired == decision(pipeline, example(PHASE_TEXT))[0]


@pytest.mark.parametrize(
    ("text", "phase"),
    [
        ("CML, accelerated phase", "accelerated"),
        ("CML-AP", "accelerated"),
        ("CML in myeloid blast crisis", "blast"),
        ("Chronic myeloid leukaemia, blast phase", "blast"),
        ("CML-BP", "blast"),
    ],
)
def test_advanced_phase_text_follows_its_own_row(pipeline: Pipeline, text: str, phase: str) -> None:
    def edit(body: dict[str, Any]) -> None:
        _plain_cml_code(body)
        _cml(body)["code"]["text"] = text

    body = edited(PHASE_TEXT, edit)
    assert values_of(body)["dx.cml_phase"] == phase
    fired, action, _ = decision(pipeline, body)  # ANC 0.35 < 0.5: ask whether leukaemia-related, never a stop
    assert "IMA-HEME-020" in fired and "IMA-HEME-010" not in fired and action == "none"


@pytest.mark.parametrize(
    "text", ["Chronic myeloid leukaemia", "CML, Ph+ (chronic myeloid)", "CML not having achieved remission"]
)
def test_no_phase_in_text_is_unknown_and_withholds_at_the_chronic_threshold(pipeline: Pipeline, text: str) -> None:
    def edit(body: dict[str, Any]) -> None:
        _plain_cml_code(body)
        _cml(body)["code"]["text"] = text

    body = edited(PHASE_TEXT, edit)
    assert values_of(body)["dx.cml_phase"] == "unknown"
    fired, action, _ = decision(pipeline, body)
    assert {"IMA-UNREAD-005", "IMA-DATA-002"} <= set(fired) and action == "withhold"


def test_conflicting_phases_are_unknown_with_a_warning() -> None:
    def edit(body: dict[str, Any]) -> None:
        _stage_text(body)
        _cml(body)["code"]["text"] = "CML, blast crisis"

    record = record_of(edited(PHASE_TEXT, edit))
    fact = record.facts["dx.cml_phase"]
    assert fact.value == "unknown" and "conflicting" in fact.note and "blast" in fact.note and "chronic" in fact.note
    assert any("names several phases" in w for w in record.warnings)


def test_a_code_beats_text_naming_another_phase() -> None:
    def edit(body: dict[str, Any]) -> None:
        _stage_code(body)  # coded chronic phase
        _cml(body)["code"]["text"] = "CML, previously in accelerated phase"

    assert values_of(edited(PHASE_TEXT, edit))["dx.cml_phase"] == "chronic"


# --- condition status -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "recurrence", "relapse", "remission"])
@pytest.mark.parametrize("icd", ["C92.10", "C92.11", "C92.12"])
def test_remission_and_relapse_keep_the_cml_indication(pipeline: Pipeline, status: str, icd: str) -> None:
    def edit(body: dict[str, Any]) -> None:
        _cml(body)["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": status}]}
        _cml(body)["code"]["coding"] = [{"system": ICD, "code": icd}]

    body = edited(REMISSION, edit)
    values = values_of(body)
    assert (values["dx.indication"], values["dx.cml_phase"]) == ("CML", "chronic")
    assert decision(pipeline, body) == decision(pipeline, example(REMISSION))


@pytest.mark.parametrize(
    ("element", "concept"),
    [
        ("clinicalStatus", {"coding": [{"system": CLINICAL, "code": "resolved"}]}),
        ("clinicalStatus", {"coding": [{"system": CLINICAL, "code": "inactive"}]}),
        ("clinicalStatus", {"text": "Resolved"}),
        ("clinicalStatus", {"coding": [{"code": "inactive"}]}),  # no system, as some EHRs send it
        ("verificationStatus", {"coding": [{"system": VERIFICATION, "code": "refuted"}]}),
        ("verificationStatus", {"coding": [{"system": VERIFICATION, "code": "entered-in-error"}]}),
    ],
)
def test_resolved_or_refuted_ends_the_diagnosis_with_a_warning(element: str, concept: dict[str, Any]) -> None:
    body = edited(REMISSION, lambda b: _cml(b).update({element: concept}))
    record = record_of(body)
    assert "dx.indication" not in record.facts and "dx.cml_phase" not in record.facts
    assert any(w.startswith("Condition/cond-cml: diagnosis not used") for w in record.warnings)


def test_remission_text_in_the_status_keeps_the_diagnosis() -> None:
    body = edited(REMISSION, lambda b: _cml(b).update(clinicalStatus={"text": "In remission (MMR)"}))
    assert values_of(body)["dx.indication"] == "CML"


# --- adverse-event severity -----------------------------------------------------------------------


def _oedema(body: dict[str, Any]) -> dict[str, Any]:
    return find(body, "Condition", "cond-oedema")


def _severity(concept: dict[str, Any]) -> Edit:
    return lambda body: _oedema(body).update(severity=concept)


def _adverse_event(**fields: Any) -> Edit:
    """The oedema as an AdverseEvent resource instead of a Condition."""

    def edit(body: dict[str, Any]) -> None:
        entries = body["prefetch"]["conditions"]["entry"]
        body["prefetch"]["conditions"]["entry"] = [e for e in entries if e["resource"]["id"] != "cond-oedema"]
        body["prefetch"]["events"] = {
            "resourceType": "AdverseEvent",
            "id": "ae-oedema",
            "actuality": "actual",
            "subject": {"reference": "Patient/pt-gist-severe"},
            "event": {"coding": [{"system": SNOMED, "code": "267038008", "display": "Edema"}], "text": "Leg oedema"},
            "date": "2026-11-01T09:00:00Z",
            **fields,
        }

    return edit


AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
SEVERE_ENCODINGS: dict[str, Edit] = {
    "CTCAE grade code": _severity({"coding": [{"system": LOCAL, "code": "ctcae-grade-3"}]}),
    "NCIt CTCAE grade code": _severity(
        {"coding": [{"system": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl", "code": "C41340"}]}
    ),
    "'Grade 3' text": _severity({"text": "CTCAE Grade 3"}),
    "SNOMED CT severe": lambda body: None,  # as the example sends it
    "SNOMED CT severe, display only": _severity({"coding": [{"display": "Severe"}]}),
    "AdverseEvent.severity severe": _adverse_event(severity={"coding": [{"system": AE_SEVERITY, "code": "severe"}]}),
    "AdverseEvent.seriousness serious": _adverse_event(
        seriousness={"coding": [{"system": AE_SERIOUSNESS, "code": "serious"}]}
    ),
}


@pytest.mark.parametrize("encoding", sorted(SEVERE_ENCODINGS))
def test_severe_oedema_encodings_give_grade_3_and_withhold(pipeline: Pipeline, encoding: str) -> None:
    body = edited(SEVERE_OEDEMA, SEVERE_ENCODINGS[encoding])
    values = values_of(body)
    assert values["ae.fluid_retention_grade"] == 3.0 and values["ae.nonheme_max_grade"] == 3.0
    assert "ae.ungraded_event" not in values
    fired, action, _ = decision(pipeline, body)
    assert action == "withhold" and {"IMA-NONHEME-010", "IMA-NONHEME-011"} <= set(fired)
    assert fired == decision(pipeline, example(SEVERE_OEDEMA))[0]


MODERATE_ENCODINGS: dict[str, Edit] = {
    "CTCAE grade code": _severity({"coding": [{"system": LOCAL, "code": "ctcae-grade-2"}]}),
    "SNOMED CT moderate": _severity({"coding": [{"system": SNOMED, "code": "6736007", "display": "Moderate"}]}),
    "AdverseEvent.severity moderate": _adverse_event(
        severity={"coding": [{"system": AE_SEVERITY, "code": "moderate"}]},
        seriousness={"coding": [{"system": AE_SERIOUSNESS, "code": "non-serious"}]},
    ),
}


@pytest.mark.parametrize("encoding", sorted(MODERATE_ENCODINGS))
def test_moderate_oedema_is_grade_2_no_withhold_but_the_gist_reduction(pipeline: Pipeline, encoding: str) -> None:
    body = edited(SEVERE_OEDEMA, MODERATE_ENCODINGS[encoding])
    assert values_of(body)["ae.fluid_retention_grade"] == 2.0
    fired, action, daily = decision(pipeline, body)
    assert "IMA-NONHEME-010" not in fired and "IMA-NONHEME-040" in fired and (action, daily) == ("change", 300.0)


def test_mild_snomed_severity_is_grade_1() -> None:
    body = edited(SEVERE_OEDEMA, _severity({"coding": [{"system": SNOMED, "code": "255604002"}]}))
    assert values_of(body)["ae.fluid_retention_grade"] == 1.0


def test_severity_note_says_how_it_was_read() -> None:
    fact = record_of(example(SEVERE_OEDEMA)).facts["ae.fluid_retention_grade"]
    assert fact.note == "severity severe (code on Condition.severity) read as grade 3 (policy.severity_severe_grade)"


def test_severity_on_a_condition_that_is_no_adverse_event_is_not_a_grade() -> None:
    def edit(body: dict[str, Any]) -> None:
        body["prefetch"]["conditions"]["entry"].append(
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "cond-ckd",
                    "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
                    "code": {"text": "Chronic kidney disease"},
                    "severity": {"coding": [{"system": SNOMED, "code": "24484000"}]},
                    "subject": {"reference": "Patient/pt-gist-severe"},
                }
            }
        )
        _oedema(body)["severity"] = {"coding": [{"system": SNOMED, "code": "255604002"}]}

    values = values_of(edited(SEVERE_OEDEMA, edit))
    assert values["ae.nonheme_max_grade"] == 1.0 and "ae.ungraded_event" not in values


# --- never silent: ungraded events ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda body: _oedema(body).pop("severity"), "Bilateral leg oedema (problem list)"),
        (_severity({"text": "see notes"}), "Bilateral leg oedema (problem list)"),
        (_adverse_event(), "Leg oedema (adverse event entry)"),
        (
            _adverse_event(seriousness={"coding": [{"system": AE_SERIOUSNESS, "code": "non-serious"}]}),
            "Leg oedema (adverse event entry)",
        ),
    ],
)
def test_oedema_without_a_grade_is_named_on_a_card(pipeline: Pipeline, edit: Edit, named: str) -> None:
    body = edited(SEVERE_OEDEMA, edit)
    record = record_of(body)
    assert record.facts["ae.ungraded_event"].value == named
    assert "ae.fluid_retention_grade" not in record.facts
    outcome_fired, _, _ = decision(pipeline, body)
    assert "IMA-UNREAD-001" in outcome_fired and "IMA-NONHEME-010" not in outcome_fired


def test_hepatotoxicity_condition_without_a_grade_is_named() -> None:
    def edit(body: dict[str, Any]) -> None:
        _oedema(body).pop("severity")
        _oedema(body)["code"] = {"text": "Drug-induced liver injury"}

    assert values_of(edited(SEVERE_OEDEMA, edit))["ae.ungraded_event"].endswith("(problem list)")


def test_ungraded_haematological_event_is_left_to_table_1() -> None:
    event = {"coding": [{"system": SNOMED, "code": "165517008", "display": "Neutropenia"}]}
    body = edited(SEVERE_OEDEMA, lambda b: _adverse_event(event=event)(b))
    assert "ae.ungraded_event" not in values_of(body)


def test_other_conditions_without_a_grade_are_not_adverse_events() -> None:
    values = values_of(example(REMISSION))  # a CML Condition has no severity: not an ungraded event
    assert "ae.ungraded_event" not in values


def test_card_text_from_the_request_is_free_of_markup(pipeline: Pipeline) -> None:
    def edit(body: dict[str, Any]) -> None:
        _oedema(body).pop("severity")
        _oedema(body)["code"]["text"] = "Oedema <img src=x onerror=alert(1)> **[link](javascript:x)** | col"

    body = edited(SEVERE_OEDEMA, edit)
    outcome = pipeline.run(json.dumps(body).encode(), now=EXAMPLES_EVALUATION_TIME)
    card = card_of_rule(outcome, "IMA-UNREAD-001")
    for text in (card["summary"], card["detail"]):
        assert "<img" not in text and "**[" not in text and "](" not in text and "| col" not in text
    shown = card["summary"] + card["detail"]  # its own card, or an "Also" line of the last one
    assert "Oedema img src x onerror alert(1)" in shown and len(card["summary"]) <= 139


@given(st.text(max_size=300))
def test_plain_label_never_carries_markup(text: str) -> None:
    label = plain_label(text)
    assert len(label) <= LABEL_MAX
    assert not set(label) & set('<>&*_[]`|#!\\"{}~=\n\r\t')
    assert not re.search(r"://|(?<!\w)www\.", label, re.IGNORECASE)  # GFM would link them without any markup


def test_plain_label_breaks_bare_links() -> None:
    assert (
        plain_label("oedema see https://evil.example/x or WWW.evil.example")
        == "oedema see https evil.example/x or evil.example"
    )


# --- policy: a severity without a grade parameter is not a grade ------------------------------------


def test_without_the_policy_parameter_a_severity_is_reported_ungraded(tmp_path: Path) -> None:
    shutil.copy(RULES_DIR / "mapping.yaml", tmp_path / "mapping.yaml")
    policy = (RULES_DIR / "policy.yaml").read_text(encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(policy.replace("severity_severe_grade:", "unused_severe_grade:"))
    settings = load_settings(tmp_path / "mapping.yaml")
    assert "severity_severe_grade" not in settings.severity_grades
    record = extract_record(
        parse_request(example(SEVERE_OEDEMA)), now=NOW, settings=settings, terminology=default_terminology()
    )
    assert "ae.fluid_retention_grade" not in record.facts
    assert record.facts["ae.ungraded_event"].value.endswith("(problem list)")  # type: ignore[union-attr]


def test_policy_grades_are_checked(tmp_path: Path) -> None:
    shutil.copy(RULES_DIR / "mapping.yaml", tmp_path / "mapping.yaml")
    policy = (RULES_DIR / "policy.yaml").read_text(encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(
        policy.replace("severity_severe_grade:\n    value: 3", "severity_severe_grade:\n    value: severe")
    )
    with pytest.raises(RuleError, match="severity_severe_grade must be a CTCAE grade"):
        load_settings(tmp_path / "mapping.yaml")


def test_no_phase_example_note() -> None:
    fact = record_of(example(NO_PHASE)).facts["dx.cml_phase"]
    assert fact.value == "unknown" and "no phase" in fact.note


@pytest.mark.parametrize(("text", "phase"), [("CML-CP", "chronic"), ("CML-BC", "blast"), ("AP-CML", "accelerated")])
def test_a_diagnosis_named_only_with_its_phase_is_cml_in_that_phase(text: str, phase: str) -> None:
    body = edited(PHASE_TEXT, lambda b: _cml(b).update(code={"text": text}))
    values = values_of(body)
    assert (values["dx.indication"], values["dx.cml_phase"]) == ("CML", phase)


def test_the_trace_shows_how_phase_and_severity_were_read(pipeline: Pipeline) -> None:
    notes = pipeline.run(json.dumps(example(PHASE_TEXT)).encode(), now=EXAMPLES_EVALUATION_TIME).trace()["notes"]
    assert notes["dx.cml_phase"] == "matched by text of Condition.code"
    assert notes["dx.indication"] == "CML by code on Condition.code; clinical status active"
    body = json.dumps(example(SEVERE_OEDEMA)).encode()
    notes = pipeline.run(body, now=EXAMPLES_EVALUATION_TIME).trace()["notes"]
    assert notes["ae.fluid_retention_grade"].startswith("severity severe (code on Condition.severity)")


def test_the_latest_phase_observation_counts() -> None:
    def phase_observation(oid: str, when: str, code: str) -> dict[str, Any]:
        found = observation(oid, "pt-cml-text", "x", 0, "1", when)
        del found["valueQuantity"]
        found["code"] = {"text": "CML disease phase"}
        found["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": code}]}
        return found

    def edit(body: dict[str, Any]) -> None:
        _plain_cml_code(body)
        entries = body["prefetch"]["observations"]["entry"]
        entries.append({"resource": phase_observation("ph-old", "2025-01-10T08:00:00Z", "278177007")})
        entries.append({"resource": phase_observation("ph-new", "2026-10-01T08:00:00Z", "278179005")})

    fact = record_of(edited(PHASE_TEXT, edit)).facts["dx.cml_phase"]
    assert fact.value == "accelerated" and fact.sources[0].id == "ph-new"


PHASE_WORDS = [
    (phase, word)
    for phase, set_name in (("chronic", "cml-phase-chronic"), ("accelerated", "cml-phase-accelerated"))
    + (("blast", "cml-phase-blast"),)
    for member in default_terminology()[set_name].members
    for word in member.words
]


@pytest.mark.parametrize(("phase", "word"), PHASE_WORDS, ids=[w for _, w in PHASE_WORDS])
def test_every_phase_name_in_the_terminology_is_read_from_the_diagnosis_text(phase: str, word: str) -> None:
    def edit(body: dict[str, Any]) -> None:
        _plain_cml_code(body)
        _cml(body)["code"]["text"] = f"Chronic myeloid leukaemia ({word.upper()})"

    fact = record_of(edited(PHASE_TEXT, edit)).facts["dx.cml_phase"]
    assert (fact.value, fact.note) == (phase, "matched by text of Condition.code")
