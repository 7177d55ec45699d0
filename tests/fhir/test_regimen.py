"""Several imatinib drafts as one regimen, renewals and duplicates (cds/fhir/drafts.py, issue 12).

The same regimen encoded in different ways must give the same regimen facts; a renewal replaces the order it
renews; a possible duplicate is counted once and named.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.fhir.types import PatientRecord
from tests.fhir.helpers import RXNORM, UCUM, clone, example, record_of

SPLIT = "order-sign-split-600mg-moderate-renal.json"
RENEWAL = "order-sign-renewal-with-active-order.json"
TABLET_100 = {"system": RXNORM, "code": "403878", "display": "imatinib 100 MG Oral Tablet"}
TABLET_400 = {"system": RXNORM, "code": "403879", "display": "imatinib 400 MG Oral Tablet"}
# the facts that describe the regimen under consideration
REGIMEN_FACTS = (
    "regimen.daily_mg",
    "regimen.interval_h",
    "regimen.status",
    "regimen.new_start",
    "regimen.days_on_dose",
    "regimen.days_on_therapy",
    "regimen.previous_daily_mg",
    "regimen.starting_daily_mg",
    "regimen.duplicate_order",
)


def drafts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in body["context"]["draftOrders"]["entry"]]


def set_drafts(body: dict[str, Any], resources: list[dict[str, Any]]) -> dict[str, Any]:
    body["context"]["draftOrders"]["entry"] = [{"resource": r} for r in resources]
    body["context"]["draftOrders"]["total"] = len(resources)
    return body


def draft(rid: str, tablet: dict[str, str], *lines: dict[str, Any]) -> dict[str, Any]:
    """A draft like the split example's, with the given product and dosage lines."""
    base = copy.deepcopy(drafts(example(SPLIT))[0])
    base["id"] = rid
    base["medicationCodeableConcept"] = {"coding": [dict(tablet)], "text": tablet["display"]}
    base["dosageInstruction"] = list(lines)
    return base


def line(value: float, unit: str, *times: str, frequency: int = 1) -> dict[str, Any]:
    code = "{tablet}" if unit == "tablet" else unit
    repeat: dict[str, Any] = {
        "frequency": frequency,
        "period": 1,
        "periodUnit": "d",
        "boundsPeriod": {"start": "2026-11-26"},
    }
    if times:
        repeat["timeOfDay"] = list(times)
    return {
        "timing": {"repeat": repeat},
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit, "system": UCUM, "code": code}}],
    }


def regimen(record: PatientRecord) -> dict[str, Any]:
    return {name: record.facts[name].value for name in REGIMEN_FACTS if name in record.facts}


# --- one regimen, several encodings ---------------------------------------------------------------------


def _encodings() -> dict[str, list[dict[str, Any]]]:
    return {
        "one draft, 6 x 100 mg": [draft("a", TABLET_100, line(6, "tablet", "08:00:00"))],
        "one draft, 600 mg": [draft("a", TABLET_100, line(600, "mg", "08:00:00"))],
        "400 mg tablet + 2 x 100 mg, two drafts": [
            draft("a", TABLET_400, line(1, "tablet", "08:00:00")),
            draft("b", TABLET_100, line(2, "tablet", "08:00:00")),
        ],
        "two drafts without clock times": [
            draft("a", TABLET_400, line(1, "tablet")),
            draft("b", TABLET_100, line(200, "mg")),
        ],
        "one draft, two dosage instructions taken together": [
            draft("a", TABLET_100, line(400, "mg", "08:00:00"), line(2, "tablet", "08:00:00")),
        ],
    }


def test_the_same_600_mg_regimen_encoded_five_ways_gives_the_same_facts() -> None:
    seen = {}
    for name, resources in _encodings().items():
        seen[name] = regimen(record_of(set_drafts(clone(example(SPLIT)), resources)))
    reference = seen.pop("one draft, 6 x 100 mg")
    assert reference["regimen.daily_mg"] == 600.0 and reference["regimen.interval_h"] == 24.0
    assert reference["regimen.previous_daily_mg"] == 400.0 and reference["regimen.duplicate_order"] is False
    for name, facts in seen.items():
        assert facts == reference, name


def test_the_split_example_sums_its_drafts_and_says_how() -> None:
    record = record_of(example(SPLIT))
    daily = record.facts["regimen.daily_mg"]
    assert daily.value == 600.0
    assert [s.id for s in daily.sources] == ["rx-ima-400", "rx-ima-2x100"]
    assert "sum of 2 draft orders = 600 mg/day" in daily.note
    assert record.facts["regimen.draft_count"].value == 2.0
    assert record.draft_parts == (
        "MedicationRequest/rx-ima-400 400 mg/day, renews MedicationRequest/rx-ima-400-active (same product and dose)",
        "MedicationRequest/rx-ima-2x100 200 mg/day",
    )


def test_one_draft_keeps_its_own_note_and_no_parts_fact() -> None:
    record = record_of(example("order-sign-new-start-moderate-renal.json"))
    assert record.facts["regimen.draft_count"].value == 1.0
    assert "regimen.draft_parts" not in record.facts
    assert record.facts["regimen.daily_mg"].note == ""  # as before: one draft is the regimen


def test_a_draft_whose_dose_cannot_be_read_leaves_the_total_unread() -> None:
    body = clone(example(SPLIT))
    del drafts(body)[1]["dosageInstruction"][0]["doseAndRate"]
    record = record_of(body)
    assert "regimen.daily_mg" not in record.facts
    assert any(w.startswith("regimen.daily_mg: not read") and "rx-ima-2x100" in w for w in record.warnings)


# --- split doses and duplicates --------------------------------------------------------------------------


def test_identical_drafts_at_different_clock_times_are_a_split_dose() -> None:
    body = set_drafts(
        clone(example(SPLIT)),
        [
            draft("am", TABLET_400, line(1, "tablet", "08:00:00")),
            draft("pm", TABLET_400, line(1, "tablet", "20:00:00")),
        ],
    )
    facts = regimen(record_of(body))
    assert facts["regimen.daily_mg"] == 800.0 and facts["regimen.interval_h"] == 12.0
    assert facts["regimen.duplicate_order"] is False


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(("08:00:00",), ("08:00:00",), id="same clock time"),
        pytest.param((), (), id="no clock times"),
        pytest.param(("08:00:00",), (), id="one without clock time"),
    ],
)
def test_identical_drafts_otherwise_are_a_possible_duplicate_counted_once(
    first: tuple[str, ...], second: tuple[str, ...]
) -> None:
    body = set_drafts(
        clone(example(SPLIT)),
        [draft("x1", TABLET_400, line(1, "tablet", *first)), draft("x2", TABLET_400, line(400, "mg", *second))],
    )
    record = record_of(body)
    assert record.facts["regimen.daily_mg"].value == 400.0  # never silently 800
    assert record.facts["regimen.duplicate_order"].value is True
    duplicates = record.facts["regimen.duplicate_orders"]
    assert duplicates.value == "draft imatinib 400 MG Oral Tablet and draft imatinib 400 MG Oral Tablet"
    assert duplicates.note == "same product and dose: MedicationRequest/x2 and MedicationRequest/x1"
    assert (
        record.draft_parts[1]
        == "MedicationRequest/x2 400 mg/day, not counted: possible duplicate of MedicationRequest/x1"
    )


def test_a_draft_identical_to_an_active_order_it_does_not_renew_is_a_possible_duplicate() -> None:
    body = clone(example(RENEWAL))
    drafts(body)[0]["priorPrescription"] = {"reference": "MedicationRequest/rx-ima-older"}
    record = record_of(body)
    assert record.facts["regimen.daily_mg"].value == 400.0
    assert record.facts["regimen.duplicate_order"].value is True
    assert record.facts["regimen.duplicate_orders"].value == (
        "draft imatinib 400 MG Oral Tablet and active order imatinib 400 MG Oral Tablet of 12 May 2026"
    )  # as the prescriber knows them; the resource ids are in the note
    assert "MedicationRequest/rx-ima-renewal and MedicationRequest/rx-ima-current" in (
        record.facts["regimen.duplicate_orders"].note
    )


def test_an_id_that_is_not_a_fhir_id_is_not_put_into_card_text() -> None:
    body = clone(example(RENEWAL))
    active = body["prefetch"]["medications"]["entry"][-1]["resource"]
    active["id"] = "<b>x</b>"
    drafts(body)[0]["priorPrescription"] = {"reference": "MedicationRequest/rx-ima-older"}
    duplicates = record_of(body).facts["regimen.duplicate_orders"]
    assert "<" not in str(duplicates.value) and "MedicationRequest" not in str(duplicates.value)
    assert "<" not in duplicates.note and "id not shown" in duplicates.note


# --- renewals --------------------------------------------------------------------------------------------


def test_a_renewal_replaces_the_active_order_whether_by_prior_prescription_or_by_same_product_and_dose() -> None:
    by_prior = record_of(example(RENEWAL))
    body = clone(example(RENEWAL))
    del drafts(body)[0]["priorPrescription"]
    by_match = record_of(body)
    assert regimen(by_prior) == regimen(by_match)
    facts = regimen(by_prior)
    assert facts["regimen.daily_mg"] == 400.0  # replaces, does not add to the active 400 mg
    assert facts["regimen.new_start"] is False and facts["regimen.days_on_dose"] == 197.5
    assert "regimen.previous_daily_mg" not in facts
    assert "(priorPrescription)" in by_prior.facts["regimen.status"].note
    assert "(same product and dose)" in by_match.facts["regimen.status"].note


def test_a_changed_dose_is_not_a_renewal() -> None:
    body = clone(example(RENEWAL))
    del drafts(body)[0]["priorPrescription"]
    drafts(body)[0]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {
        "value": 600,
        "unit": "mg",
        "system": UCUM,
        "code": "mg",
    }
    record = record_of(body)
    assert record.facts["regimen.daily_mg"].value == 600.0
    assert record.facts["regimen.previous_daily_mg"].value == 400.0
    assert "regimen.status" in record.facts and not record.facts["regimen.status"].note


# --- orders on record signed together ---------------------------------------------------------------------

TROUGH = "patient-view-low-trough-cml.json"


def with_second_active_order(tablet: dict[str, str], tablets: float, start: str = "2026-05-01") -> dict[str, Any]:
    body = clone(example(TROUGH))
    entries = body["prefetch"]["medications"]["entry"]
    second = copy.deepcopy(entries[0]["resource"])
    second["id"] = "rx-ima-second"
    second["medicationCodeableConcept"] = {"coding": [dict(tablet)], "text": tablet["display"]}
    second["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = tablets
    second["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"] = start
    entries.append({"resource": second})
    return body


def test_active_orders_started_together_are_one_regimen() -> None:
    record = record_of(with_second_active_order(TABLET_100, 2))
    daily = record.facts["regimen.daily_mg"]
    assert daily.value == 600.0 and [s.id for s in daily.sources] == ["rx-ima-active", "rx-ima-second"]
    assert record.facts["regimen.interval_h"].value == 24.0
    assert record.facts["regimen.duplicate_order"].value is False
    assert record.draft_parts == (
        "orders started together, read as one regimen of 600 mg/day: MedicationRequest/rx-ima-active 400 mg/day;"
        " MedicationRequest/rx-ima-second 200 mg/day",
    )
    # the dose history the PK estimate uses has both tablets of each evening dose
    evenings = {d.time: 0.0 for d in record.doses}
    for dose in record.doses:
        evenings[dose.time] += dose.mg
    assert set(evenings.values()) == {600.0}


def test_identical_active_orders_started_together_are_a_possible_duplicate() -> None:
    record = record_of(with_second_active_order(TABLET_400, 1))
    assert record.facts["regimen.daily_mg"].value == 400.0
    assert record.facts["regimen.duplicate_order"].value is True
    assert record.facts["regimen.duplicate_orders"].value == (
        "active order imatinib 400 MG Oral Tablet of 1 May 2026 and "
        "active order imatinib 400 MG Oral Tablet of 1 May 2026"
    )


def test_an_active_order_started_later_replaces_the_earlier_one_as_before() -> None:
    record = record_of(with_second_active_order(TABLET_100, 6, start="2026-10-01"))
    assert record.facts["regimen.daily_mg"].value == 600.0
    assert record.facts["regimen.previous_daily_mg"].value == 400.0
    assert record.facts["regimen.duplicate_order"].value is False and record.draft_parts == ()


def test_order_select_reads_the_other_imatinib_drafts_of_the_session_with_the_selected_one() -> None:
    original = record_of(example("order-select-imatinib-selected.json"))
    body = clone(example("order-select-imatinib-selected.json"))
    entries = body["context"]["draftOrders"]["entry"]
    selected = next(e["resource"] for e in entries if e["resource"]["id"] == "rx-ima-600")
    unselected = copy.deepcopy(selected)
    unselected["id"] = "rx-ima-2x100-unselected"
    selected["medicationCodeableConcept"] = {"coding": [dict(TABLET_400)], "text": TABLET_400["display"]}
    selected["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 1
    unselected["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 2
    entries.append({"resource": unselected})
    record = record_of(body)
    assert regimen(record) == regimen(original)
    assert regimen(record)["regimen.daily_mg"] == 600.0
    assert [o["id"] for o in record.draft_orders] == ["rx-ima-600", "rx-ima-2x100-unselected"]


def test_order_select_of_another_drug_still_reads_no_imatinib_regimen() -> None:
    body = clone(example("order-select-imatinib-selected.json"))
    body["context"]["selections"] = ["MedicationRequest/rx-ondansetron"]
    record = record_of(body)
    assert record.draft_orders == () and "regimen.daily_mg" not in record.facts


def test_a_prior_prescription_that_names_no_medication_request_falls_back_to_same_product_and_dose() -> None:
    body = clone(example(RENEWAL))
    drafts(body)[0]["priorPrescription"] = {"display": "last month's order"}
    record = record_of(body)
    assert "(same product and dose)" in record.facts["regimen.status"].note
    assert record.facts["regimen.duplicate_order"].value is False


# --- properties ----------------------------------------------------------------------------------------------

PARTS = st.lists(  # (tablet mg, tablets) pairs; at most 1500 mg/day, inside regimen.daily_mg's plausible range
    st.tuples(st.sampled_from([100, 400]), st.integers(min_value=1, max_value=2)), min_size=1, max_size=4, unique=True
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=PARTS, data=st.data())
def test_drafts_add_up_in_any_order_and_a_repeated_draft_is_counted_once(
    parts: list[tuple[int, int]], data: st.DataObject
) -> None:
    tablets = {100: TABLET_100, 400: TABLET_400}
    resources = [draft(f"d{i}", tablets[mg], line(n, "tablet", "08:00:00")) for i, (mg, n) in enumerate(parts)]
    total = float(sum(mg * n for mg, n in parts))
    shuffled = data.draw(st.permutations(resources))
    facts = record_of(set_drafts(clone(example(SPLIT)), list(shuffled))).facts
    assert facts["regimen.daily_mg"].value == total and facts["regimen.interval_h"].value == 24.0
    assert facts["regimen.duplicate_order"].value is False
    repeated = copy.deepcopy(data.draw(st.sampled_from(resources)))
    repeated["id"] = "again"
    facts = record_of(set_drafts(clone(example(SPLIT)), [*resources, repeated])).facts
    assert facts["regimen.daily_mg"].value == total
    assert facts["regimen.duplicate_order"].value is True


def _split_active_with_renewal_of_the_100_mg_tablets(prior: bool) -> dict[str, Any]:
    """On 400 mg + 2 x 100 mg signed together; only the 100 mg tablets are renewed."""
    body = with_second_active_order(TABLET_100, 2)
    renewal = draft("rx-ima-100-renewal", TABLET_100, line(2, "tablet", "20:00:00"))
    if prior:
        renewal["priorPrescription"] = {"reference": "MedicationRequest/rx-ima-second"}
    renewal["subject"] = {"reference": "Patient/pt-lowtrough"}
    body["hook"] = "order-sign"
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": renewal}]}
    return body


@pytest.mark.parametrize("prior", [True, False], ids=["priorPrescription", "same product and dose"])
def test_renewing_part_of_a_regimen_signed_together_keeps_the_other_part(prior: bool) -> None:
    record = record_of(_split_active_with_renewal_of_the_100_mg_tablets(prior))
    daily = record.facts["regimen.daily_mg"]
    assert daily.value == 600.0  # 400 mg continuing + 200 mg renewed, not a change to 200 mg
    assert [s.id for s in daily.sources] == ["rx-ima-100-renewal", "rx-ima-active"]
    assert "active order imatinib 400 MG Oral Tablet of 1 May 2026 400 mg/day continues (signed with a renewed" in (
        daily.note
    )
    assert "regimen.previous_daily_mg" not in record.facts  # no dose change
    assert record.facts["regimen.duplicate_order"].value is False
    assert record.facts["regimen.draft_parts"].value == daily.note  # for the card IMA-REGIMEN-001
