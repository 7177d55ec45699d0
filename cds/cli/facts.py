"""``imatinib-cds facts REQUEST.json``: the facts a CDS Hooks request maps to, with their sources."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds.errors import InvalidInput
from cds.fhir import PatientRecord, SourcedFact, extract_record, parse_request
from cds.shipped import default_rules


def register(sub: Any) -> None:
    parser = sub.add_parser("facts", help="print the facts a CDS Hooks request maps to, with their sources")
    parser.add_argument("request", type=Path, help="CDS Hooks request JSON file")
    parser.add_argument("--now", help="evaluation time (ISO 8601 with zone; default: the current time)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--rules", type=Path, default=None, help="rules folder (default: IMATINIB_CDS_RULES, else the shipped rules)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    now = _now(args.now)
    try:
        raw = args.request.read_bytes()
    except OSError as exc:
        raise InvalidInput(str(args.request), f"cannot read the file: {exc.strerror}") from exc
    record = extract_record(parse_request(raw), now=now, **_mapping(args.rules or default_rules()))
    text = json.dumps(record_json(record), indent=2) if args.json else "\n".join(record_lines(record))
    sys.stdout.write(text + "\n")
    return 0


def _mapping(rules: Path) -> dict[str, Any]:
    """What the mapper reads from a rules folder: the fact vocabulary, mapping settings and terminology."""
    from cds.engine.vocabulary import load_vocabulary
    from cds.fhir.settings import load_settings
    from cds.fhir.terminology import load_terminology

    return {
        "vocabulary": load_vocabulary(rules / "facts.yaml"),
        "settings": load_settings(rules / "mapping.yaml"),
        "terminology": load_terminology(rules / "terminology"),
    }


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("--now", f"not an ISO 8601 date-time: {text!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def record_lines(record: PatientRecord) -> list[str]:
    lines = [f"{record.hook} {record.hook_instance} patient {record.patient_id} at {record.now.isoformat()}"]
    lines += [_fact_line(fact) for fact in record.facts.values()]
    lines.append(f"doses: {len(record.doses)} from {record.dose_source} ({record.dose_note})")
    lines.append(f"levels: {len(record.levels)}")
    lines += [f"warning: {w}" for w in record.warnings]
    return lines


def _fact_line(fact: SourcedFact) -> str:
    if isinstance(fact.value, bool):
        value = str(fact.value).lower()
    elif isinstance(fact.value, float):
        value = f"{fact.value:.4g}" + (f" {fact.unit}" if fact.unit and fact.unit != "1" else "")
    else:
        value = fact.value
    sources = "; ".join(str(s) for s in fact.sources) or "-"
    note = f"  [{fact.note}]" if fact.note else ""
    return f"{fact.name:31} {value:22} {sources}{note}"


def record_json(record: PatientRecord) -> dict[str, Any]:
    """A stable JSON form of the record (used by the golden tests)."""
    return {
        "hook": record.hook,
        "hookInstance": record.hook_instance,
        "patientId": record.patient_id,
        "now": record.now.isoformat(),
        "facts": {name: _fact_json(fact) for name, fact in record.facts.items()},
        "doseSource": record.dose_source,
        "doseNote": record.dose_note,
        "doses": [{"time": d.time.isoformat(), "mg": d.mg} for d in record.doses],
        "levels": [
            {"time": x.time.isoformat(), "ng_ml": round(x.ng_ml, 3), "source": str(x.source)} for x in record.levels
        ],
        "draftOrders": [f"{o.get('resourceType')}/{o.get('id')}" for o in record.draft_orders],
        **({"draftParts": list(record.draft_parts)} if record.draft_parts else {}),
        "warnings": list(record.warnings),
    }


def _fact_json(fact: SourcedFact) -> dict[str, Any]:
    value = round(fact.value, 4) if isinstance(fact.value, float) else fact.value
    return {
        "value": value,
        "unit": fact.unit,
        "sources": [str(s) for s in fact.sources],
        **({"note": fact.note} if fact.note else {}),
    }
