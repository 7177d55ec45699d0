"""Element readers: each read checks the FHIR datatype and names the JSON path; facts read only what they need."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from cds.errors import InvalidInput
from cds.fhir import parse
from cds.fhir.element import Element, ElementError, Fields
from tests.fhir.helpers import clone, example, find, record_of

RENAL = "order-sign-new-start-moderate-renal.json"
CREATININE = "prefetch.observations.entry[2].resource"


def element(data: dict[str, Any], warnings: list[str] | None = None) -> Element:
    return Element(data, "r", [] if warnings is None else warnings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-11-20T08:00:00Z", datetime(2026, 11, 20, 8, tzinfo=UTC), id="instant"),
        pytest.param(
            "2026-11-20T08:00:00.5+01:00",
            datetime(2026, 11, 20, 8, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1))),
            id="offset",
        ),
        pytest.param("2026-11-20", date(2026, 11, 20), id="date"),
        pytest.param("2026-11", "2026-11", id="partial"),
        pytest.param("2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z", id="leap-second"),
    ],
)
def test_date_times_read_as_the_models_do(value: str, expected: object) -> None:
    assert element({"t": value}).date_time("t") == expected
    model = parse.Observation.model_validate(
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectiveDateTime": value}
    )
    assert model.effectiveDateTime == expected


def test_a_date_time_without_zone_is_read_as_utc_with_a_warning() -> None:
    warnings: list[str] = []
    assert element({"t": "2026-11-20T08:00:00"}, warnings).date_time("t") == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert warnings == ["r.t: a date-time without a time zone, read as UTC (accepted)"]


@pytest.mark.parametrize(
    ("read", "value"),
    [
        pytest.param("date_time", "2026-02-30", id="no-such-day"),
        pytest.param("date_time", "20 Nov 2026", id="not-iso"),
        pytest.param("date_time", 0, id="number-for-date"),
        pytest.param("decimal", "1.9.1", id="not-a-number"),
        pytest.param("decimal", True, id="boolean-for-number"),
        pytest.param("decimal", float("nan"), id="nan"),
        pytest.param("decimal", 10**400, id="huge"),
        pytest.param("code", " final", id="code-with-space"),
        pytest.param("code", 3, id="number-for-code"),
        pytest.param("string", "", id="empty-string"),
        pytest.param("boolean", "true", id="string-for-boolean"),
        pytest.param("child", [], id="array-for-object"),
    ],
)
def test_wrong_datatypes_name_the_element(read: str, value: object) -> None:
    with pytest.raises(ElementError) as err:
        getattr(element({"x": value}), read)("x")
    assert err.value.path == "r.x"


def test_arrays_accept_a_single_value_with_a_warning() -> None:
    warnings: list[str] = []
    found = element({"coding": {"system": "s", "code": "c"}}, warnings).children("coding")
    assert [c.code("code") for c in found] == ["c"]
    assert warnings == ["r.coding: a single value instead of an array (accepted)"]


def test_an_array_item_of_the_wrong_type_names_its_index() -> None:
    with pytest.raises(ElementError) as err:
        element({"c": {"coding": [{"code": "a"}, "b"]}}).concept("c")
    assert err.value.path == "r.c.coding[1]"


def test_times_drop_a_zone_and_keep_leap_seconds() -> None:
    assert element({"t": ["08:00:00", "23:59:60"]}).times("t") == [time(8), "23:59:60"]
    with pytest.raises(ElementError, match=r"r\.t\[0\]"):
        element({"t": [0]}).times("t")


def test_a_validated_model_is_read_through_the_same_readers() -> None:
    raw = find(example(RENAL), "Observation", "lab-creat")
    model = parse.validate_resource(raw, CREATININE, [])
    read = Element(Fields(model), CREATININE, [])
    quantity = read.child("valueQuantity")
    assert quantity is not None and quantity.decimal("value") == 2.0
    assert read.concept("code") == element(raw).concept("code")
    assert read.date_time("effectiveDateTime") == element(raw).date_time("effectiveDateTime")


def test_a_number_given_as_a_string_is_read_with_a_warning_as_the_models_do() -> None:
    warnings: list[str] = []
    assert element({"v": "2.50"}, warnings).decimal("v") == 2.5
    assert warnings == ["r.v: a number given as a string (accepted)"]


def test_an_invalid_element_the_facts_read_drops_the_observation() -> None:
    body = clone(example(RENAL))
    find(body, "Observation", "lab-creat")["valueQuantity"]["value"] = "two"
    record = record_of(body)
    assert "renal.creatinine" not in record.facts
    expected = f"{CREATININE}.valueQuantity.value: expected a number, got the string 'two' (resource not used)"
    assert expected in record.warnings


def test_a_number_is_not_a_date() -> None:
    """Deliberate: the R4B models read 0 as 1970-01-01 (a Unix time); FHIR JSON dates are strings."""
    body = clone(example(RENAL))
    find(body, "Observation", "lab-creat")["effectiveDateTime"] = 0
    record = record_of(body)
    assert "renal.creatinine" not in record.facts
    assert f"{CREATININE}.effectiveDateTime: expected a FHIR date or dateTime, got int (resource not used)" in (
        record.warnings
    )


def test_an_invalid_element_the_facts_never_read_is_ignored() -> None:
    """Deliberate: only the elements the facts read are checked, so this Observation is now used."""
    body = clone(example(RENAL))
    find(body, "Observation", "lab-creat")["interpretation"] = "high"  # R4: an array of CodeableConcept
    record = record_of(body)
    assert record.facts["renal.creatinine"].value == 2.0
    assert not any("lab-creat" in w or CREATININE in w for w in record.warnings)


def test_an_active_order_is_read_only_where_the_facts_need_it() -> None:
    body = clone(example("patient-view-tdm-due.json"))
    find(body, "MedicationRequest", "rx-ima-active")["priority"] = 5  # R4: a code; no fact reads it
    assert record_of(body).facts["regimen.status"].value == "active"


def test_the_draft_order_is_still_validated_whole_by_r4b() -> None:
    """Card suggestions rewrite the draft: an element R4B rejects anywhere in it is an InvalidInput."""
    body = clone(example(RENAL))
    body["context"]["draftOrders"]["entry"][0]["resource"]["priority"] = 5
    with pytest.raises(InvalidInput) as err:
        record_of(body)
    assert err.value.path == "context.draftOrders.entry[0].resource.priority"
