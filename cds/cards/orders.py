"""FHIR R4 resources that suggestions carry: the rewritten draft order and a trough-level order."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cds.engine.render import format_value

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# tablets the dose is made of (RxNorm SCD, clinical-rules.md §4.1)
TABLET_400 = {"system": RXNORM, "code": "403879", "display": "imatinib 400 MG Oral Tablet"}
TABLET_100 = {"system": RXNORM, "code": "403878", "display": "imatinib 100 MG Oral Tablet"}
IMATINIB_LEVEL = {"system": LOINC, "code": "57844-3", "display": "Imatinib [Mass/volume] in Serum or Plasma"}


def rewrite_dose(order: Mapping[str, Any], daily_mg: float, interval_h: int) -> dict[str, Any]:
    """The whole draft MedicationRequest with the new dose and frequency; everything else kept as it was."""
    per_dose = daily_mg * interval_h / 24
    per_dose = int(per_dose) if float(per_dose).is_integer() else per_dose
    per_day = 24 // interval_h
    strength, tablet = (400, TABLET_400) if per_dose % 400 == 0 else (100, TABLET_100)
    tablets = int(per_dose // strength)
    updated = copy.deepcopy(dict(order))
    updated.pop("medicationReference", None)
    updated["medicationCodeableConcept"] = {"coding": [dict(tablet)], "text": tablet["display"]}
    updated["dosageInstruction"] = [
        {
            "text": _dose_text(per_dose, per_day, tablets, strength),
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]},
            "doseAndRate": [{"doseQuantity": {"value": per_dose, "unit": "mg", "system": UCUM, "code": "mg"}}],
        }
    ]
    return updated


def _dose_text(per_dose: float, per_day: int, tablets: int, strength: int) -> str:
    how_often = "once daily" if per_day == 1 else "twice daily"
    plural = "s" if tablets > 1 else ""
    tablets_text = f"{tablets} x {strength} mg tablet{plural}"
    return f"{format_value(per_dose)} mg {how_often} ({tablets_text}) with a meal and a large glass of water"


def trough_level_order(patient_id: str | None, order_id: str) -> dict[str, Any]:
    """A draft ServiceRequest for an imatinib trough, saying how to draw it."""
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [dict(IMATINIB_LEVEL)], "text": "Imatinib trough level"},
        "note": [
            {
                "text": "Trough: draw just before the next dose, at steady state (at least 7 days on the same dose), "
                "EDTA plasma, LC-MS/MS. Record the time of the last dose."
            }
        ],
    }
    if patient_id:
        request["subject"] = {"reference": f"Patient/{patient_id}"}
    return request
