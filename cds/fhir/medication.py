"""The elements of MedicationRequest, MedicationStatement and MedicationAdministration that the facts read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from cds.fhir.element import DateValue, Element, Period, Quantity
from cds.fhir.terminology import Concept


@dataclass(frozen=True)
class Timing:
    frequency: int | None
    period: float | None
    period_unit: str | None
    times: tuple[time | str, ...]  # repeat.timeOfDay (leap seconds kept as text, as the models do)
    bounds: Period | None  # repeat.boundsPeriod
    codes: tuple[str | None, ...]  # code.coding[].code


@dataclass(frozen=True)
class Dosage:
    as_needed: bool
    dose: Quantity | None  # doseAndRate[0].doseQuantity (or doseRange.low); an administration's dose
    timing: Timing | None
    text: str | None = None  # the sig as written, only to check it against the dose fields


@dataclass(frozen=True)
class MedicationFacts:
    status: str | None
    medication: Concept | None  # medicationCodeableConcept
    reference: str | None  # medicationReference.reference
    reference_display: str | None
    dosages: tuple[Dosage, ...]
    status_reason: Concept | None = None
    authored_on: DateValue | None = None
    validity: Period | None = None  # dispenseRequest.validityPeriod
    effective: DateValue | None = None  # effectiveDateTime
    period: Period | None = None  # effectivePeriod
    date_asserted: DateValue | None = None
    prior_prescription: str | None = None  # MedicationRequest.priorPrescription.reference (a renewal)


def read_request(resource: Element) -> MedicationFacts:
    dispense = resource.child("dispenseRequest")
    prior = resource.child("priorPrescription")
    return MedicationFacts(
        *_common(resource),
        dosages=tuple(_dosage(d) for d in resource.children("dosageInstruction")),
        status_reason=resource.concept("statusReason"),
        authored_on=resource.date_time("authoredOn"),
        validity=dispense.period("validityPeriod") if dispense else None,
        prior_prescription=prior.string("reference") if prior else None,
    )


def read_statement(resource: Element) -> MedicationFacts:
    reason = resource.children("statusReason")
    return MedicationFacts(
        *_common(resource),
        dosages=tuple(_dosage(d) for d in resource.children("dosage")),
        status_reason=reason[0].as_concept() if reason else None,
        effective=resource.date_time("effectiveDateTime"),
        period=resource.period("effectivePeriod"),
        date_asserted=resource.date_time("dateAsserted"),
    )


def read_administration(resource: Element) -> MedicationFacts:
    dosage = resource.child("dosage")
    dose = dosage.quantity("dose") if dosage else None
    return MedicationFacts(
        *_common(resource),
        dosages=(Dosage(False, dose, None),) if dosage else (),
        effective=resource.date_time("effectiveDateTime"),
        period=resource.period("effectivePeriod"),
    )


def _common(resource: Element) -> tuple[str | None, Concept | None, str | None, str | None]:
    ref = resource.child("medicationReference")
    return (
        resource.code("status"),
        resource.concept("medicationCodeableConcept"),
        ref.string("reference") if ref else None,
        ref.string("display") if ref else None,
    )


def _dosage(dosage: Element) -> Dosage:
    as_needed = bool(dosage.boolean("asNeededBoolean")) or dosage.concept("asNeededCodeableConcept") is not None
    first = dosage.first("doseAndRate")
    dose = None
    if first is not None:
        dose = first.quantity("doseQuantity")
        low = first.child("doseRange")
        if dose is None and low is not None:
            dose = low.quantity("low")
    timing = dosage.child("timing")
    text = dosage.get("text")
    return Dosage(as_needed, dose, _timing(timing) if timing else None, text if isinstance(text, str) else None)


def _timing(timing: Element) -> Timing:
    repeat = timing.child("repeat")
    code = timing.concept("code")
    return Timing(
        frequency=repeat.integer("frequency", minimum=1) if repeat else None,  # positiveInt
        period=repeat.decimal("period") if repeat else None,
        period_unit=repeat.code("periodUnit") if repeat else None,
        times=tuple(repeat.times("timeOfDay")) if repeat else (),
        bounds=repeat.period("boundsPeriod") if repeat else None,
        codes=tuple(c.code for c in code.codings) if code else (),
    )
