"""Request parsing: what is rejected (InvalidInput naming the path), what is accepted with a warning."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from cds.errors import InvalidInput
from cds.fhir import parse, parse_request
from cds.fhir.index import ResourceIndex
from tests.fhir.helpers import EXAMPLES, clone, example, find, record_of

BASE = "order-sign-new-start-moderate-renal.json"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        pytest.param(b"<html><body>Tomcat error</body></html>", "$", id="html-body"),
        pytest.param(b"{not json", "$", id="not-json"),
        pytest.param(b"[1, 2]", "$", id="array"),
        pytest.param({"hookInstance": "x", "context": {}}, "hook", id="no-hook"),
        pytest.param({"hook": "order-sign", "context": {}}, "hookInstance", id="no-hook-instance"),
        pytest.param({"hook": "order-sign", "hookInstance": "x"}, "context", id="no-context"),
        pytest.param({"hook": "order-sign", "hookInstance": "x", "context": []}, "context", id="context-array"),
    ],
)
def test_rejects_envelopes(raw: Any, path: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_request(raw)
    assert err.value.path == path


def test_rejects_html_in_a_prefetch_value() -> None:
    body = clone(example(BASE))
    body["prefetch"]["patient"] = "<html><head><title>500 Internal Server Error</title></head></html>"
    with pytest.raises(InvalidInput) as err:
        parse_request(body)
    assert err.value.path == "prefetch.patient" and "HTML" in err.value.message


def test_rejects_html_in_a_bundle_entry() -> None:
    body = clone(example(BASE))
    body["prefetch"]["observations"]["entry"][2]["resource"] = "<html>error</html>"
    with pytest.raises(InvalidInput) as err:
        parse_request(body)
    assert err.value.path == "prefetch.observations.entry[2].resource"


def test_rejects_an_object_without_resource_type() -> None:
    body = clone(example(BASE))
    body["prefetch"]["conditions"] = {"error": "timeout"}
    with pytest.raises(InvalidInput, match="prefetch.conditions"):
        parse_request(body)


def test_an_unreadable_draft_order_names_its_path() -> None:
    body = clone(example(BASE))
    find(body, "MedicationRequest", "rx-ima-new")["dosageInstruction"][0]["timing"] = "daily"
    with pytest.raises(InvalidInput) as err:
        record_of(body)
    assert err.value.path.startswith("context.draftOrders.entry[0].resource.dosageInstruction[0]")


def test_null_prefetch_and_operation_outcome_are_tolerated() -> None:
    body = clone(example(BASE))
    body["prefetch"]["medications"] = None
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": []}
    record = record_of(body)
    assert "dx.indication" not in record.facts
    assert any("OperationOutcome" in w for w in record.warnings)


def test_prefetch_keys_are_not_a_contract() -> None:
    body = clone(example(BASE))
    prefetch = body["prefetch"]
    everything = [e for k in ("conditions", "medications", "observations") for e in prefetch[k]["entry"]]
    body["prefetch"] = {"p": prefetch["patient"], "all-in-one": {"resourceType": "Bundle", "entry": everything}}
    assert record_of(body).facts == record_of(example(BASE)).facts


def test_leniencies_are_recorded_as_warnings() -> None:
    body = clone(example(BASE))
    draft = find(body, "MedicationRequest", "rx-ima-new")
    draft["category"] = {"text": "outpatient"}
    draft["dosageInstruction"][0]["doseAndRate"] = draft["dosageInstruction"][0]["doseAndRate"][0]
    find(body, "Observation", "wt-1")["effectiveDateTime"] = "2026-11-23T09:10:00"
    record = record_of(body)
    text = "\n".join(record.warnings)
    assert "doseAndRate: an object instead of an array" in text
    assert "category: a single value instead of an array" in text
    assert "without a time zone" in text
    assert record.facts["regimen.daily_mg"].value == 400.0


def test_dstu2_medication_order_is_read() -> None:
    body = clone(example(BASE))
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["resourceType"] = "MedicationOrder"
    draft["patient"] = draft.pop("subject")
    draft["dateWritten"] = draft.pop("authoredOn")
    dosage = draft["dosageInstruction"][0]
    dosage["doseQuantity"] = dosage.pop("doseAndRate")[0]["doseQuantity"]
    del draft["intent"]
    record = record_of(body)
    assert record.facts["regimen.daily_mg"].value == 400.0
    assert any("MedicationOrder" in w for w in record.warnings)


def test_order_select_acts_only_on_selected_orders() -> None:
    body = clone(example("order-select-imatinib-selected.json"))
    request = parse_request(body)
    assert request.draft_keys == (("MedicationRequest", "rx-ima-600"),)
    assert len(request.context_draft_keys) == 2
    body["context"]["selections"] = ["MedicationRequest/rx-ondansetron"]
    assert "regimen.daily_mg" not in record_of(body).facts


def test_resources_of_another_patient_are_ignored() -> None:
    body = clone(example(BASE))
    find(body, "Observation", "lab-creat")["subject"] = {"reference": "Patient/someone-else"}
    record = record_of(body)
    assert "renal.creatinine" not in record.facts
    assert any("another patient" in w for w in record.warnings)


# Sent as real clients send it, not valid R4 (the Sandbox's draft on screen load has no intent and no medication)
NOT_R4 = {("order-select-sandbox-no-medication.json", "context.draftOrders.entry[0].resource")}


def _all_resources() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in sorted(EXAMPLES.glob("*.json")):
        request = parse_request(json.loads(path.read_text()))
        for key, raw in request.resources.items():
            if key[0] in parse.MODELS and (path.name, request.paths[key]) not in NOT_R4:
                out.append((path.name, request.paths[key], dict(raw)))
    return out


@pytest.mark.parametrize(("name", "path", "raw"), _all_resources(), ids=lambda v: v if isinstance(v, str) else "")
def test_r4_fields_survive_parsing(name: str, path: str, raw: dict[str, Any]) -> None:
    """R5 models silently drop R4 fields; the R4B models must keep medication, code and value[x]."""
    model = parse.validate_resource(raw, path, [])
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    for field in ("medicationCodeableConcept", "code", "valueQuantity", "valueCodeableConcept", "stage"):
        if field in raw:
            assert dumped[field] == _normalised(raw[field]), (name, path, field)


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_validation_is_lazy() -> None:
    request = parse_request(example(BASE))
    index = ResourceIndex(request, [])
    assert index._models == {}


@pytest.mark.parametrize(
    ("value", "end"),
    [
        ("2026-11-28", datetime(2026, 11, 29, tzinfo=UTC)),
        (date(2026, 11, 28), datetime(2026, 11, 29, tzinfo=UTC)),
        ("2026-12", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-02", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 11, 28, 10, tzinfo=UTC), datetime(2026, 11, 28, 10, tzinfo=UTC)),
        (None, None),
    ],
)
def test_a_period_end_includes_every_time_that_matches_it(value: object, end: datetime | None) -> None:
    assert parse.as_period_end(value) == end
