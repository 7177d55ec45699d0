"""The elements of Patient, Condition, AdverseEvent and Procedure that the facts read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cds.fhir import parse
from cds.fhir.element import DateValue, Element, first_code
from cds.fhir.terminology import Concept


@dataclass(frozen=True)
class PatientFacts:
    gender: str | None
    birth_date: DateValue | None


@dataclass(frozen=True)
class ConditionFacts:
    clinical_status: Concept | None
    verification_status: Concept | None
    code: Concept | None
    severity: Concept | None
    stages: tuple[tuple[Concept | None, Concept | None], ...]  # (summary, type)
    when: datetime | None  # onsetDateTime, else recordedDate


@dataclass(frozen=True)
class AdverseEventFacts:
    outcome: str | None
    actuality: str | None
    severity: Concept | None
    seriousness: Concept | None
    event: Concept | None
    when: datetime | None  # date, else detected


@dataclass(frozen=True)
class ProcedureFacts:
    status: str | None
    code: Concept | None


def read_patient(patient: Element) -> PatientFacts:
    return PatientFacts(patient.code("gender"), patient.date_time("birthDate"))


def read_condition(condition: Element) -> ConditionFacts:
    return ConditionFacts(
        clinical_status=condition.concept("clinicalStatus"),
        verification_status=condition.concept("verificationStatus"),
        code=condition.concept("code"),
        severity=condition.concept("severity"),
        stages=tuple((s.concept("summary"), s.concept("type")) for s in condition.children("stage")),
        when=parse.as_datetime(condition.date_time("onsetDateTime") or condition.date_time("recordedDate")),
    )


def read_adverse_event(event: Element) -> AdverseEventFacts:
    return AdverseEventFacts(
        outcome=first_code(event.concept("outcome")),
        actuality=event.code("actuality"),
        severity=event.concept("severity"),
        seriousness=event.concept("seriousness"),
        event=event.concept("event"),
        when=parse.as_datetime(event.date_time("date") or event.date_time("detected")),
    )


def read_procedure(procedure: Element) -> ProcedureFacts:
    return ProcedureFacts(procedure.code("status"), procedure.concept("code"))
