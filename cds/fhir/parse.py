"""CDS Hooks request parsing: the only module that touches fhir.resources (always its R4B models).

The request envelope is checked by hand; resources are gathered from every prefetch value and from the
context and indexed by (resourceType, id). ``validate_resource`` validates one whole with its R4B model (the
mapper does so for the draft orders it acts on and for the patient); known real-world deviations are
repaired and each repair is recorded as a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pydantic
from fhir.resources.R4B.adverseevent import AdverseEvent
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure

from cds.errors import InvalidInput
from cds.fhir.types import HookRequest

__all__ = [
    "AdverseEvent",
    "Condition",
    "Medication",
    "MedicationAdministration",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Patient",
    "Procedure",
    "ResourceError",
    "as_datetime",
    "parse_request",
    "validate_resource",
]

MODELS: dict[str, type[FHIRResourceModel]] = {
    m.__name__: m
    for m in (
        AdverseEvent,
        Condition,
        Medication,
        MedicationAdministration,
        MedicationRequest,
        MedicationStatement,
        Observation,
        Patient,
        Procedure,
    )
}
_MAX_REPAIRS = 20
_NO_ZONE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


class ResourceError(ValueError):
    """A resource that the R4B model rejects even after the lenient repairs; ``path`` is its JSON path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


# --- envelope -------------------------------------------------------------------------------------------


def parse_request(raw: bytes | str | Mapping[str, Any]) -> HookRequest:
    """Check a CDS Hooks request and gather its resources; raises InvalidInput naming the JSON path."""
    body = _load_json(raw)
    warnings: list[str] = []
    hook = _required_str(body, "hook")
    hook_instance = _required_str(body, "hookInstance")
    context = body.get("context")
    if not isinstance(context, dict):
        raise InvalidInput("context", f"expected an object, got {_kind(context)}")
    gathered = _Gatherer(warnings)
    draft_keys = gathered.drafts(context.get("draftOrders"))
    gathered.prefetch(body.get("prefetch"))
    selections = _selections(hook, context.get("selections"), warnings)
    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        fhir_server=body.get("fhirServer") if isinstance(body.get("fhirServer"), str) else None,
        context=context,
        patient_id=_optional_str(context, "patientId"),
        user_id=_optional_str(context, "userId"),
        encounter_id=_optional_str(context, "encounterId"),
        selections=selections,
        draft_keys=_selected(hook, draft_keys, selections, warnings),
        context_draft_keys=tuple(draft_keys),
        resources=gathered.resources,
        paths=gathered.paths,
        warnings=tuple(warnings),
    )


def _load_json(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        body: object = dict(raw)
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput("$", f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("$", f"expected a JSON object, got {_kind(body)}")
    return body


def _required_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(key, f"required non-empty string, got {_kind(value)}")
    return value


def _optional_str(context: Mapping[str, Any], key: str) -> str | None:
    value = context.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"context.{key}", f"expected a string, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "HTML" if value.lstrip()[:1] == "<" else f"the string {value[:40]!r}"
    return type(value).__name__


def _selections(hook: str, value: object, warnings: list[str]) -> tuple[str, ...]:
    if value is None:
        if hook == "order-select":
            warnings.append("context.selections: missing on order-select; no order is selected")
        return ()
    if isinstance(value, str):
        warnings.append("context.selections: a string instead of an array (accepted)")
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("context.selections", f"expected an array of 'Type/id' strings, got {_kind(value)}")
    return tuple(value)


def _selected(
    hook: str, drafts: list[tuple[str, str]], selections: tuple[str, ...], warnings: list[str]
) -> tuple[tuple[str, str], ...]:
    if hook != "order-select":
        return tuple(drafts)
    chosen = tuple(key for key in drafts if f"{key[0]}/{key[1]}" in selections)
    for ref in selections:
        if not any(f"{k[0]}/{k[1]}" == ref for k in drafts):
            warnings.append(f"context.selections: {ref} is not in context.draftOrders")
    return chosen


# --- gathering resources --------------------------------------------------------------------------------


class _Gatherer:
    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.paths: dict[tuple[str, str], str] = {}

    def drafts(self, value: object) -> list[tuple[str, str]]:
        if value is None:
            return []
        path = "context.draftOrders"
        if isinstance(value, list):
            self.warnings.append(f"{path}: an array instead of a Bundle (accepted)")
            value = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in value]}
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            raise InvalidInput(path, f"expected a Bundle, got {_kind(value)}")
        return self.bundle(value, path)

    def prefetch(self, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise InvalidInput("prefetch", f"expected an object, got {_kind(value)}")
        for key, item in value.items():
            if item is not None:
                self.value(item, f"prefetch.{key}")

    def value(self, item: object, path: str) -> list[tuple[str, str]]:
        if not isinstance(item, dict) or not isinstance(item.get("resourceType"), str):
            raise InvalidInput(path, f"expected a FHIR resource, got {_kind(item)}")
        if item["resourceType"] == "Bundle":
            return self.bundle(item, path)
        if item["resourceType"] == "OperationOutcome":
            self.warnings.append(f"{path}: the client reported an error (OperationOutcome); data not used")
            return []
        return [self.add(item, path)]

    def bundle(self, bundle: dict[str, Any], path: str) -> list[tuple[str, str]]:
        if "type" not in bundle:
            self.warnings.append(f"{path}: Bundle without 'type' (accepted)")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise InvalidInput(f"{path}.entry", f"expected an array, got {_kind(entries)}")
        keys: list[tuple[str, str]] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "resource" not in entry:
                self.warnings.append(f"{path}.entry[{i}]: no resource (skipped)")
                continue
            keys += self.value(entry["resource"], f"{path}.entry[{i}].resource")
        return keys

    def add(self, resource: dict[str, Any], path: str) -> tuple[str, str]:
        resource = _upgrade(resource, path, self.warnings)
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            rid = f"anonymous-{len(self.resources) + 1}"
            resource = {**resource, "id": rid}
            self.warnings.append(f"{path}: resource without an id, called {rid}")
        key = (resource["resourceType"], rid)
        if key not in self.resources:
            self.resources[key] = resource
            self.paths[key] = path
        return key


def _upgrade(resource: dict[str, Any], path: str, warnings: list[str]) -> dict[str, Any]:
    """DSTU2/STU3 medication shapes to R4 where the mapping is one-to-one."""
    if resource["resourceType"] == "MedicationOrder":
        warnings.append(f"{path}: DSTU2 MedicationOrder read as an R4 MedicationRequest")
        resource = {**resource, "resourceType": "MedicationRequest", "intent": resource.get("intent", "order")}
        if "dateWritten" in resource:
            resource["authoredOn"] = resource.pop("dateWritten")
    if resource["resourceType"] in ("MedicationRequest", "MedicationStatement"):
        if "patient" in resource and "subject" not in resource:
            warnings.append(f"{path}: DSTU2 'patient' read as 'subject'")
            resource = {k: v for k, v in resource.items() if k != "patient"} | {"subject": resource["patient"]}
        resource = _upgrade_dosages(resource, path, warnings)
    return resource


def _upgrade_dosages(resource: dict[str, Any], path: str, warnings: list[str]) -> dict[str, Any]:
    key = "dosageInstruction" if "dosageInstruction" in resource else "dosage"
    dosages = resource.get(key)
    if isinstance(dosages, dict):
        warnings.append(f"{path}.{key}: an object instead of an array (accepted)")
        dosages = [dosages]
    if not isinstance(dosages, list):
        return resource
    fixed = [_upgrade_dosage(d, f"{path}.{key}[{i}]", warnings) for i, d in enumerate(dosages)]
    return {**resource, key: fixed}


def _upgrade_dosage(dosage: object, path: str, warnings: list[str]) -> object:
    if not isinstance(dosage, dict):
        return dosage
    if isinstance(dosage.get("doseAndRate"), dict):
        warnings.append(f"{path}.doseAndRate: an object instead of an array (accepted)")
        dosage = {**dosage, "doseAndRate": [dosage["doseAndRate"]]}
    old = {k: dosage[k] for k in ("doseQuantity", "doseRange") if k in dosage}
    if old:
        warnings.append(f"{path}: STU3/DSTU2 {', '.join(old)} moved into doseAndRate")
        rest = {k: v for k, v in dosage.items() if k not in old}
        dosage = {**rest, "doseAndRate": [*rest.get("doseAndRate", []), old]}
    return dosage


# --- validating one resource ----------------------------------------------------------------------------


def validate_resource(raw: Mapping[str, Any], path: str, warnings: list[str]) -> FHIRResourceModel:
    """Validate with the R4B model, repairing wrapped lists, unknown fields and zone-less times."""
    model = MODELS.get(str(raw.get("resourceType")))
    if model is None:
        raise ResourceError(path, f"resource type {raw.get('resourceType')!r} is not read by this service")
    data: Any = raw  # validation does not change its input: copy only when a repair must edit it
    for _ in range(_MAX_REPAIRS):
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            if data is raw:
                data = json.loads(json.dumps(raw))
            if not _repair(data, exc.errors(), path, warnings):
                first = exc.errors()[0]
                where = _path(path, first["loc"])
                raise ResourceError(where, str(first["msg"])) from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise ResourceError(path, str(exc)) from exc
    raise ResourceError(path, "too many deviations from R4")


def _repair(data: Any, errors: list[Any], path: str, warnings: list[str]) -> bool:
    repaired = False
    for error in errors:
        loc = tuple(error["loc"])
        parent, last = _locate(data, loc)
        if parent is None:
            continue
        fix = _fix(error, parent[last])
        if fix is _DROP:
            del parent[last]
        elif fix is not None:
            parent[last] = fix
        else:
            continue
        warnings.append(f"{_path(path, loc)}: {_REPAIR_NOTE[error['type']]} (accepted)")
        repaired = True
    return repaired


_DROP = object()
_REPAIR_NOTE = {
    "list_type": "a single value instead of an array",
    "extra_forbidden": "an element R4 does not define was ignored",
    "value_error": "a date-time without a time zone, read as UTC",
}


def _fix(error: Mapping[str, Any], value: Any) -> Any:
    kind = error["type"]
    if kind == "list_type" and value is not None:
        return [value]
    if kind == "extra_forbidden":
        return _DROP
    if kind == "value_error" and isinstance(value, str) and _NO_ZONE.match(value):
        return value + "Z"
    return None


def _locate(data: Any, loc: tuple[Any, ...]) -> tuple[Any, Any]:
    node = data
    for step in loc[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None, None
    last = loc[-1] if loc else None
    if (isinstance(node, dict) and last in node) or (isinstance(node, list) and isinstance(last, int)):
        return node, last
    return None, None


def _path(path: str, loc: tuple[Any, ...]) -> str:
    return path + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in loc)


# --- FHIR date helpers ----------------------------------------------------------------------------------


def as_period_end(value: object) -> datetime | None:
    """A Period's end as the first moment after it: FHIR's end includes every time matching it, so a day
    ("2026-11-28"), a month or a year ends when the next one begins; a dateTime ends when it says."""
    start = as_datetime(value)
    if start is None or isinstance(value, datetime):
        return start
    if isinstance(value, date):
        return start + timedelta(days=1)
    precision = len(re.findall(r"\d+", str(value))) if isinstance(value, str) and "T" not in value else 0
    if precision == 3:
        return start + timedelta(days=1)
    if precision == 2:
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    if precision == 1:
        return start.replace(year=start.year + 1)
    return start


def as_datetime(value: object) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime (partial dates: their first moment)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        parts = [int(p) for p in re.findall(r"\d+", value)[:3]]
        if parts:
            year, month, day = (parts + [1, 1])[:3]
            try:
                return datetime(year, month, day, tzinfo=UTC)
            except ValueError:
                return None
    return None
