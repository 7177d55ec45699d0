"""Shared pieces of the FHIR tests: the pinned evaluation time and small request builders."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds.fhir import PatientRecord, extract_record, fact_values, parse_request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "fhir_examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def record_of(body: dict[str, Any] | str | bytes) -> PatientRecord:
    return extract_record(parse_request(body), now=NOW)


def values_of(body: dict[str, Any]) -> dict[str, Any]:
    return fact_values(record_of(body))


def prefetch_entries(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = body["prefetch"][key]["entry"]
    return entries


def find(body: dict[str, Any], resource_type: str, rid: str) -> dict[str, Any]:
    """The resource (type, id) anywhere in prefetch or draftOrders, for in-place edits."""
    bundles = [v for v in body.get("prefetch", {}).values() if isinstance(v, dict)]
    bundles.append(body["context"].get("draftOrders") or {})
    for value in bundles:
        if value.get("resourceType") == resource_type and value.get("id") == rid:
            return value
        for entry in value.get("entry", []):
            res = entry["resource"]
            if res["resourceType"] == resource_type and res["id"] == rid:
                return res  # type: ignore[no-any-return]
    raise KeyError((resource_type, rid))


def observation(
    oid: str, pid: str, loinc: str, value: float, unit: str, when: str, high: float | None = None
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    if high is not None:
        obs["referenceRange"] = [{"high": {"value": high, "unit": unit, "system": UCUM, "code": unit}}]
    return obs


def add_observation(body: dict[str, Any], obs: dict[str, Any]) -> None:
    body["prefetch"]["observations"]["entry"].append({"resource": obs})


def clone(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)
