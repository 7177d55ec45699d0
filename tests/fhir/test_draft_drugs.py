"""What each draft orders (cds/fhir/draft_drugs.py), and which drafts are validated whole because of it."""

from __future__ import annotations

from typing import Any

import pytest

from cds.errors import InvalidInput
from cds.fhir import default_settings, default_terminology
from cds.fhir.clinical import _PERPETRATORS
from tests.fhir.helpers import RXNORM, clone, example, find, record_of

UNRELATED = "order-sign-unrelated-drafts-on-imatinib.json"
SANDBOX = "order-select-sandbox-no-medication.json"
SELECT = "order-select-imatinib-selected.json"


def kinds(body: dict[str, Any]) -> list[tuple[str, bool, str]]:
    return [(d.order, d.acted_on, d.kind) for d in record_of(body).drafts]


def medication(display: str, code: str = "") -> dict[str, Any]:
    coding = {"system": RXNORM, "display": display, **({"code": code} if code else {})}
    return {"coding": [coding], "text": display}


def test_unrelated_drafts_are_named_as_such() -> None:
    record = record_of(example(UNRELATED))
    assert [(d.order, d.kind, d.drug) for d in record.drafts] == [
        ("MedicationRequest/rx-amoxicillin", "unrelated", "amoxicillin 500 MG Oral Capsule"),
        ("MedicationRequest/rx-levothyroxine", "unrelated", "levothyroxine sodium 0.05 MG Oral Tablet"),
    ]


def test_the_sandbox_draft_without_medication_or_intent_is_read_without_error() -> None:
    record = record_of(example(SANDBOX))
    assert kinds(example(SANDBOX)) == [("MedicationRequest/request-123", True, "no-medication")]
    assert record.draft_orders == ()
    assert record.facts["regimen.status"].value == "active"  # the patient's imatinib order still counts


def test_order_select_marks_the_selection() -> None:
    assert kinds(example(SELECT)) == [
        ("MedicationRequest/rx-ima-600", True, "imatinib"),
        ("MedicationRequest/rx-ondansetron", False, "unrelated"),
    ]


def test_an_interacting_draft_names_its_value_sets() -> None:
    (rifampin,) = record_of(example("order-sign-rifampin-coprescribed.json")).drafts
    assert rifampin.kind == "interacting" and "cyp3a4-strong-inducers" in rifampin.classes


@pytest.mark.parametrize(
    ("concept", "kind"),
    [
        (medication("ketoconazole 200 MG Oral Tablet"), "interacting"),
        (medication("ketoconazole 20 MG/ML Topical Cream"), "unrelated"),  # topical forms do not count
        (medication("clarithromycin 500 MG Oral Tablet"), "interacting"),
        (medication("Gleevec 400 MG Oral Tablet"), "imatinib"),
        ({"text": "metformin 500 mg tablet"}, "unrelated"),
        ({}, "no-medication"),
        ("imatinib", "unidentified"),  # not a CodeableConcept
    ],
)
def test_a_draft_is_classified_by_its_medication(concept: Any, kind: str) -> None:
    body = clone(example(UNRELATED))
    find(body, "MedicationRequest", "rx-amoxicillin")["medicationCodeableConcept"] = concept
    if kind == "unidentified":
        with pytest.raises(InvalidInput) as err:  # cannot tell it is not imatinib: validated whole
            record_of(body)
        assert err.value.path == "context.draftOrders.entry[0].resource.medicationCodeableConcept"
        return
    assert kinds(body)[0][2] == kind


@pytest.mark.parametrize(
    ("reference", "contained", "kind"),
    [
        (
            {"reference": "#med"},
            [{"resourceType": "Medication", "id": "med", "code": medication("imatinib", "282388")}],
            "imatinib",
        ),
        ({"reference": "Medication/elsewhere", "display": "imatinib 400 mg tablet"}, None, "imatinib"),
        ({"reference": "Medication/elsewhere", "display": "amoxicillin 500 mg"}, None, "unrelated"),
        ({"reference": "Medication/elsewhere"}, None, "unidentified"),
    ],
)
def test_a_medication_reference_is_followed(reference: dict[str, Any], contained: Any, kind: str) -> None:
    body = clone(example(UNRELATED))
    draft = find(body, "MedicationRequest", "rx-amoxicillin")
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = reference
    if contained:
        draft["contained"] = contained
    if kind == "imatinib":  # the dose reads from the draft: it is acted on (1 tablet, strength from the name)
        assert record_of(body).draft_orders
    assert kinds(body)[0][2] == kind


def test_an_unrelated_drafts_unreadable_fields_do_not_matter() -> None:
    body = clone(example(UNRELATED))
    amoxicillin = find(body, "MedicationRequest", "rx-amoxicillin")
    amoxicillin["dosageInstruction"][0]["timing"] = "three times daily"
    del amoxicillin["intent"]
    assert kinds(body)[0][2] == "unrelated"


def test_an_interacting_drafts_unreadable_dose_is_a_clear_error() -> None:
    body = clone(example("order-sign-rifampin-coprescribed.json"))
    find(body, "MedicationRequest", "rx-rif-draft")["dosageInstruction"][0]["timing"] = "daily"
    with pytest.raises(InvalidInput) as err:
        record_of(body)
    assert err.value.path.startswith("context.draftOrders.entry[0].resource.dosageInstruction[0]")


def test_a_selected_imatinib_drafts_unreadable_dose_is_a_clear_error() -> None:
    body = clone(example(SELECT))
    find(body, "MedicationRequest", "rx-ima-600")["dosageInstruction"][0]["timing"] = "daily"
    with pytest.raises(InvalidInput) as err:
        record_of(body)
    assert err.value.path.startswith("context.draftOrders.entry[0].resource.dosageInstruction[0]")


def test_every_comedication_value_set_makes_a_draft_relevant() -> None:
    """The mapper's perpetrator sets (comed.* facts) and the inducer sets must all be relevance classes."""
    read_by_mapper = {name for name, _, _ in _PERPETRATORS} | {"grapefruit", "cyp3a4-avoidable-inducers"}
    listed = set(default_settings().relevance_interacting_value_sets)
    assert read_by_mapper <= listed
    assert listed <= set(default_terminology().value_sets)
