"""FHIR R4 resources that suggestions carry: the rewritten draft order and a trough-level order."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds.engine.render import format_value

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# tablets the dose is made of (RxNorm SCD, clinical-rules.md §4.1)
TABLET_400 = {"system": RXNORM, "code": "403879", "display": "imatinib 400 MG Oral Tablet"}
TABLET_100 = {"system": RXNORM, "code": "403878", "display": "imatinib 100 MG Oral Tablet"}
IMATINIB_LEVEL = {"system": LOINC, "code": "57844-3", "display": "Imatinib [Mass/volume] in Serum or Plasma"}


@dataclass(frozen=True)
class DosePlan:
    """A daily dose as it is given: mg per dose, doses a day, and the tablets each dose is made of."""

    daily_mg: float
    per_dose: float
    per_day: int
    tablets: int
    strength: int
    tablet: dict[str, str] | None  # the product to write on the order (None: keep the ordered one)

    @property
    def regimen(self) -> str:
        """ "300 mg once daily: 3 x 100 mg tablets" (twice daily also names the daily total)."""
        plural = "s" if self.tablets > 1 else ""
        tablets = f"{self.tablets} x {self.strength} mg tablet{plural}"
        if self.per_day == 1:
            return f"{format_value(self.per_dose)} mg once daily: {tablets}"
        return (
            f"{format_value(self.per_dose)} mg twice daily ({format_value(self.daily_mg)} mg/day): {tablets} per dose"
        )


def dose_plan(order: Mapping[str, Any] | None, daily_mg: float, interval_h: int) -> DosePlan:
    """How ``daily_mg`` is given with the ordered tablet when it is a whole number of it, else 400 or 100 mg."""
    per_dose = daily_mg * interval_h / 24
    per_dose = int(per_dose) if float(per_dose).is_integer() else per_dose
    strength, tablet = _tablet(order or {}, per_dose)
    return DosePlan(daily_mg, per_dose, 24 // interval_h, int(per_dose // strength), strength, tablet)


def rewrite_dose(order: Mapping[str, Any], daily_mg: float, interval_h: int) -> dict[str, Any]:
    """The whole draft MedicationRequest with the new dose and frequency; everything else kept as it was.

    The ordered tablet is kept when the new dose is a whole number of it, and the whole regimen is written in
    medicationCodeableConcept.text and dosageInstruction.text: a client that applies only part of the
    suggestion (the CDS Hooks Sandbox swaps only medicationCodeableConcept) then cannot turn "2 tablets" of
    another strength into another dose without the regimen in words. The start date (boundsPeriod/
    boundsDuration) and, while the doses a day do not change, the clock times are kept."""
    plan = dose_plan(order, daily_mg, interval_h)
    updated = copy.deepcopy(dict(order))
    if plan.tablet is not None:
        updated.pop("medicationReference", None)
        updated["medicationCodeableConcept"] = {"coding": [dict(plan.tablet)]}
    product = updated.get("medicationCodeableConcept")
    if isinstance(product, dict):
        name = plan.tablet["display"] if plan.tablet else f"imatinib {plan.strength} MG Oral Tablet"
        product["text"] = f"{name} - {plan.regimen}"
    updated["dosageInstruction"] = [
        {
            "text": f"{plan.regimen}, with a meal and a large glass of water",
            "timing": {"repeat": _repeat(order, plan.per_day)},
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]},
            "doseAndRate": [{"doseQuantity": {"value": plan.per_dose, "unit": "mg", "system": UCUM, "code": "mg"}}],
        }
    ]
    return updated


def _tablet(order: Mapping[str, Any], per_dose: float) -> tuple[int, dict[str, str] | None]:
    """The strength the dose is made of, and the tablet to write on the order (None: keep the ordered one)."""
    concept = order.get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    ordered = {c.get("code") for c in codings or [] if isinstance(c, Mapping) and c.get("system") == RXNORM}
    for strength, tablet in ((400, TABLET_400), (100, TABLET_100)):
        if tablet["code"] in ordered and per_dose % strength == 0:
            return strength, None
    return (400, TABLET_400) if per_dose % 400 == 0 else (100, TABLET_100)


def _repeat(order: Mapping[str, Any], per_day: int) -> dict[str, Any]:
    repeat: dict[str, Any] = {"frequency": per_day, "period": 1, "periodUnit": "d"}
    dosages = order.get("dosageInstruction")
    first = dosages[0] if isinstance(dosages, list) and dosages and isinstance(dosages[0], Mapping) else {}
    timing = first.get("timing")
    old = timing.get("repeat") if isinstance(timing, Mapping) else None
    if not isinstance(old, Mapping):
        return repeat
    for kept in ("boundsPeriod", "boundsDuration"):
        if kept in old:
            repeat[kept] = copy.deepcopy(old[kept])
    times = old.get("timeOfDay")
    if isinstance(times, list) and len(times) == per_day:
        repeat["timeOfDay"] = list(times)
    return repeat


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
