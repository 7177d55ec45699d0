"""Imatinib products and dosage instructions: strength, mg per dose, doses per day, clock times."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

from cds.fhir.index import ResourceIndex, raw_concept
from cds.fhir.medication import Dosage, MedicationFacts, Timing
from cds.fhir.quantities import is_tablet_count, mass_mg
from cds.fhir.terminology import Concept, Match, ValueSet
from cds.numbers import format_number

_PER_DAY_CODES = {"QD": 1, "OD": 1, "Q24H": 1, "QAM": 1, "QPM": 1, "QHS": 1, "BID": 2, "Q12H": 2}
_PER_DAY_CODES |= {"TID": 3, "Q8H": 3, "QID": 4, "Q6H": 4}
_UNIT_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25}
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(?!\s*/)", re.IGNORECASE)


@dataclass(frozen=True)
class Product:
    concept: Concept | None
    strength_mg: float | None
    imatinib: Match | None  # the concept's match in the imatinib value set


@dataclass(frozen=True)
class Dosing:
    """A dosage instruction read into numbers; fields are None when the instruction does not say."""

    daily_mg: float | None
    doses_per_day: float | None
    schedule: tuple[tuple[time, float], ...]  # (clock time, mg) from timing.repeat.timeOfDay
    note: str = ""

    @property
    def interval_h(self) -> float | None:
        return 24 / self.doses_per_day if self.doses_per_day else None


def product(index: ResourceIndex, key: tuple[str, str], med: MedicationFacts, imatinib: ValueSet) -> Product:
    """The medication of a request/statement/administration, with its tablet strength when known."""
    if key not in index.products:
        found = med.medication
        strength = None
        if found is None and med.reference:
            medication = referenced_medication(index, key, med.reference)
            if medication is not None:
                found = raw_concept(medication.get("code"))
                strength = _ingredient_strength(medication)
            elif med.reference_display:
                found = Concept((), med.reference_display)
        match = imatinib.match(found)
        index.products[key] = Product(found, strength or _strength(found, match), match)
    return index.products[key]


def referenced_medication(index: ResourceIndex, key: tuple[str, str], ref: str) -> Mapping[str, Any] | None:
    """The referenced Medication as JSON: contained ('#id') or elsewhere in the request."""
    if ref.startswith("#"):
        contained = index.raw(key).get("contained")
        found = (c for c in contained or [] if isinstance(c, dict) and c.get("id") == ref[1:])
        return next(found, None) if isinstance(contained, list) else None
    target = ("Medication", ref.rstrip("/").split("/")[-1])
    return index.raw(target) if target in index.request.resources else None


def _ingredient_strength(medication: Mapping[str, Any]) -> float | None:
    """mg per unit from Medication.ingredient[].strength.numerator (JSON, so checked step by step)."""
    ingredients = medication.get("ingredient")
    for ingredient in ingredients if isinstance(ingredients, list) else []:
        strength = ingredient.get("strength") if isinstance(ingredient, dict) else None
        numerator = strength.get("numerator") if isinstance(strength, dict) else None
        if not isinstance(numerator, dict):
            continue
        value, unit = numerator.get("value"), numerator.get("code") or numerator.get("unit")
        if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(unit, str):
            return mass_mg(float(value), unit)
    return None


def _strength(found: Concept | None, match: Match | None) -> float | None:
    if match is not None and match.member.strength_mg is not None:
        return match.member.strength_mg
    for text in (found.text, *(c.display for c in found.codings)) if found else ():
        hit = _STRENGTH.search(text or "")
        if hit:
            return float(hit.group(1))
    return None


def read_dosing(dosages: Sequence[Dosage], strength_mg: float | None) -> Dosing:
    """Sum the scheduled (not as-needed) dosage lines of one order into mg/day, doses/day and clock times."""
    return combine_dosing([(dosage, strength_mg) for dosage in dosages])


def combine_dosing(lines: Sequence[tuple[Dosage, float | None]]) -> Dosing:
    """Sum scheduled dosage lines, each with its product's tablet strength (one order or several drafts).

    Lines with the same timing (frequency, period, clock times, code) are taken together: their doses add, their
    administrations do not (400 mg + 2 x 100 mg once daily is one daily dose of 600 mg, not two)."""
    daily, schedule = 0.0, []
    occasions: dict[tuple[object, ...], float] = {}
    for dosage, strength_mg in lines:
        if dosage.as_needed:
            continue
        mg, why = dose_mg(dosage, strength_mg)
        per_day = _per_day(dosage.timing)
        if mg is None or per_day is None:
            return Dosing(None, per_day, (), why or "the dosage gives no frequency")
        daily += mg * per_day
        occasions[_timing_key(dosage.timing)] = per_day
        times = dosage.timing.times if dosage.timing else ()
        schedule += [(t, mg) for t in times if isinstance(t, time)]
    if not occasions:
        return Dosing(None, None, (), "no scheduled dosage instruction")
    return Dosing(daily, sum(occasions.values()), tuple(sorted(schedule)))


def _timing_key(timing: Timing | None) -> tuple[object, ...]:
    if timing is None:
        return ()
    return (timing.frequency, timing.period, timing.period_unit, tuple(map(str, timing.times)), timing.codes)


def dose_mg(dosage: Dosage, strength_mg: float | None) -> tuple[float | None, str]:
    """mg per administration from doseQuantity in mg, or tablets x strength."""
    quantity = dosage.dose
    if quantity is None or quantity.value is None:
        return None, "the dosage gives no dose"
    value, unit = quantity.value, quantity.unit
    if unit and mass_mg(value, unit) is not None:
        return mass_mg(value, unit), ""
    if is_tablet_count(unit):
        if strength_mg is None:
            return None, "a tablet count for a product whose strength is not known"
        return value * strength_mg, f"{format_number(value)} tablet(s) x {format_number(strength_mg)} mg"
    return None, f"dose unit {unit!r} is neither mg nor tablets"


def _per_day(timing: Timing | None) -> float | None:
    if timing is None:
        return None
    if timing.frequency or timing.times:
        frequency = float(timing.frequency or len(timing.times))
        days = float(timing.period or 1) * _UNIT_DAYS.get(str(timing.period_unit or "d"), 1.0)
        return frequency / days if days > 0 else None
    for code in timing.codes:
        if str(code).upper() in _PER_DAY_CODES:
            return float(_PER_DAY_CODES[str(code).upper()])
    return None
