"""A PatientRecord as plain JSON and back, so a decision can be recomputed from what the mapper read.

The audit log keeps the record beside each decision; `audit replay` evaluates candidate rules on it without
mapping the request again (when the mapping configuration is the one that made it). ``record_from_json``
inverts ``record_to_json`` exactly: tests compare the round trip with the record for every example.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cds.errors import InvalidInput
from cds.fhir.types import Covariates, DoseEvent, DraftDrug, LevelSample, PatientRecord, Source, SourcedFact


def record_to_json(record: PatientRecord) -> dict[str, Any]:
    return {
        "hook": record.hook,
        "hook_instance": record.hook_instance,
        "patient_id": record.patient_id,
        "now": record.now.isoformat(),
        "facts": [_fact(f) for f in record.facts.values()],
        "doses": [[d.time.isoformat(), d.mg] for d in record.doses],
        "dose_source": record.dose_source,
        "dose_note": record.dose_note,
        "levels": [[lv.time.isoformat(), lv.ng_ml, _source(lv.source)] for lv in record.levels],
        "covariates": vars(record.covariates),
        "draft_orders": list(record.draft_orders),
        "warnings": list(record.warnings),
        "draft_parts": list(record.draft_parts),
        "drafts": [{**vars(d), "key": list(d.key), "classes": list(d.classes)} for d in record.drafts],
    }


def record_from_json(data: Mapping[str, Any]) -> PatientRecord:
    try:
        return PatientRecord(
            hook=data["hook"],
            hook_instance=data["hook_instance"],
            patient_id=data["patient_id"],
            now=datetime.fromisoformat(data["now"]),
            facts={f["name"]: _sourced_fact(f) for f in data["facts"]},
            doses=tuple(DoseEvent(datetime.fromisoformat(t), mg) for t, mg in data["doses"]),
            dose_source=data["dose_source"],
            dose_note=data["dose_note"],
            levels=tuple(LevelSample(datetime.fromisoformat(t), c, _source_of(s)) for t, c, s in data["levels"]),
            covariates=Covariates(**data["covariates"]),
            draft_orders=tuple(data["draft_orders"]),
            warnings=tuple(data["warnings"]),
            draft_parts=tuple(data["draft_parts"]),
            drafts=tuple(
                DraftDrug(**{**d, "key": tuple(d["key"]), "classes": tuple(d["classes"])}) for d in data["drafts"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("record", f"not a recorded patient record: {exc!r}") from exc


def _fact(fact: SourcedFact) -> dict[str, Any]:
    return {**vars(fact), "sources": [_source(s) for s in fact.sources]}


def _sourced_fact(data: Mapping[str, Any]) -> SourcedFact:
    sources = tuple(_source_of(s) for s in data["sources"])
    return SourcedFact(
        data["name"], data["value"], data["unit"], sources, data["note"], data["reported"], data["computed"]
    )


def _source(source: Source) -> list[Any]:
    return [source.resource_type, source.id, source.effective.isoformat() if source.effective else None]


def _source_of(data: list[Any]) -> Source:
    kind, ident, effective = data
    return Source(kind, ident, datetime.fromisoformat(effective) if effective else None)
