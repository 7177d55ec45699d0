"""Time the FHIR mapper on one request whose prefetch holds 5,000 resources.

Run: .venv/bin/python bench/fhir_mapping.py [N_RESOURCES]
The request is fhir_examples/patient-view-low-trough-cml.json plus a year of synthetic history: vital signs,
unrelated labs, the labs the mapper reads (creatinine, LFTs, counts, weights, imatinib levels), other
medications and conditions. Prints the best and median wall time of parse_request + extract_record.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cds.fhir import extract_record, parse_request

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PATIENT = "pt-lowtrough"
# (LOINC, unit, value): the first rows are read by the mapper, the rest are noise it must skip cheaply.
LABS = [
    ("2160-0", "mg/dL", 0.8),
    ("1975-2", "mg/dL", 0.7),
    ("1920-8", "U/L", 30),
    ("1742-6", "U/L", 28),
    ("751-8", "10*3/uL", 3.1),
    ("777-3", "10*3/uL", 240),
    ("29463-7", "kg", 59.5),
    ("57844-3", "ng/mL", 900),
    ("8867-4", "/min", 72),
    ("8480-6", "mm[Hg]", 128),
    ("8462-4", "mm[Hg]", 78),
    ("8310-5", "Cel", 36.8),
    ("2345-7", "mg/dL", 96),
    ("2951-2", "mmol/L", 140),
    ("2823-3", "mmol/L", 4.2),
    ("718-7", "g/dL", 12.9),
    ("6690-2", "10*3/uL", 6.2),
    ("1751-7", "g/dL", 4.1),
    ("2093-3", "mg/dL", 180),
    ("4548-4", "%", 5.6),
]


def synthetic(i: int) -> dict[str, Any]:
    if i % 50 == 0:
        return _medication(i)
    if i % 50 == 1:
        return _condition(i)
    code, unit, value = LABS[i % len(LABS)]
    when = NOW - timedelta(hours=2 * i + 1)
    return {
        "resourceType": "Observation",
        "id": f"obs-{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": when.isoformat().replace("+00:00", "Z"),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def _medication(i: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"med-{i}",
        "status": "completed",
        "intent": "order",
        "medicationCodeableConcept": {"text": f"paracetamol 500 MG Oral Tablet ({i})"},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": "2026-03-01",
    }


def _condition(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"cond-{i}",
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "code": {"text": f"Upper respiratory infection ({i})"},
        "subject": {"reference": f"Patient/{PATIENT}"},
    }


def build(n_resources: int) -> bytes:
    body = json.loads((ROOT / "fhir_examples" / "patient-view-low-trough-cml.json").read_text())
    have = sum(len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1 for v in body["prefetch"].values())
    extra = [{"resource": synthetic(i)} for i in range(max(0, n_resources - have))]
    body["prefetch"]["history"] = {"resourceType": "Bundle", "type": "searchset", "entry": extra}
    return json.dumps(copy.deepcopy(body)).encode()


def main(n_resources: int = 5000, repeats: int = 7) -> None:
    raw = build(n_resources)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        record = extract_record(parse_request(raw), now=NOW)
        times.append(time.perf_counter() - start)
    print(
        f"{n_resources} resources ({len(raw) / 1e6:.1f} MB): best {min(times) * 1000:.0f} ms, "
        f"median {statistics.median(times) * 1000:.0f} ms; {len(record.facts)} facts, "
        f"{len(record.levels)} levels, {len(record.doses)} doses ({record.dose_source})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
