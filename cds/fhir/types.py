"""Frozen values the FHIR layer hands to the rest of the service (no fhir.resources types leak out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

FactValue = float | bool | str
DoseSource = Literal["administrations", "statements", "order-regimen", "none"]


@dataclass(frozen=True)
class Source:
    """Where a value came from: a FHIR resource and the clinically effective time, if it has one."""

    resource_type: str
    id: str
    effective: datetime | None = None

    def __str__(self) -> str:
        when = self.effective.isoformat() if self.effective else "undated"
        return f"{self.resource_type}/{self.id} ({when})"


@dataclass(frozen=True)
class SourcedFact:
    name: str
    value: FactValue
    unit: str | None
    sources: tuple[Source, ...]
    note: str = ""
    reported: str = ""  # the source's own value and unit when the unit conversion changed the number
    computed: str = ""  # a value computed from others: how, in words ("Cockcroft-Gault: creatinine 150 umol/L, ...")


@dataclass(frozen=True)
class DoseEvent:
    time: datetime
    mg: float


@dataclass(frozen=True)
class LevelSample:
    time: datetime
    ng_ml: float
    source: Source


@dataclass(frozen=True)
class Covariates:
    """What the PK estimator needs about the patient; None when not known."""

    sex: str | None
    age_years: float | None
    weight_kg: float | None
    indication: str | None


@dataclass(frozen=True)
class HookRequest:
    """A parsed CDS Hooks call; ``resources`` holds every resource found, keyed by (type, id)."""

    hook: str
    hook_instance: str
    fhir_server: str | None
    context: Mapping[str, Any]
    patient_id: str | None
    user_id: str | None
    encounter_id: str | None
    selections: tuple[str, ...]
    draft_keys: tuple[tuple[str, str], ...]  # the orders to act on (on order-select: the selected ones)
    context_draft_keys: tuple[tuple[str, str], ...]  # every order in context.draftOrders
    resources: Mapping[tuple[str, str], Mapping[str, Any]]
    paths: Mapping[tuple[str, str], str]
    warnings: tuple[str, ...] = ()


DraftKind = Literal["imatinib", "interacting", "unrelated", "no-medication", "unidentified", "not-a-medication"]


@dataclass(frozen=True)
class DraftDrug:
    """What one draft order of context.draftOrders orders (for the relevance stage and the trace)."""

    key: tuple[str, str]  # (resourceType, id)
    order: str  # "MedicationRequest/<id>" as cards and the trace show it (an id that is not a FHIR id is not shown)
    acted_on: bool  # on order-select: named in context.selections; on order-sign: every draft
    kind: DraftKind  # "unidentified": it names a medication that cannot be read or found in the request
    drug: str | None  # the medication as the request names it (a plain label), None when it names none
    classes: tuple[str, ...] = ()  # the interacting value sets it is in (rules/mapping.yaml relevance)


@dataclass(frozen=True)
class PatientRecord:
    hook: str
    hook_instance: str
    patient_id: str | None
    now: datetime
    facts: Mapping[str, SourcedFact]
    doses: tuple[DoseEvent, ...]
    dose_source: DoseSource
    dose_note: str
    levels: tuple[LevelSample, ...]
    covariates: Covariates
    draft_orders: tuple[Mapping[str, Any], ...]
    warnings: tuple[str, ...] = field(default=())
    draft_parts: tuple[str, ...] = ()  # each imatinib draft and its contribution to the regimen
    drafts: tuple[DraftDrug, ...] = ()  # every draft order of this patient in the request, and what it orders


def fact_values(record: PatientRecord) -> dict[str, FactValue]:
    """The plain name -> value document the rule engine consumes."""
    return {name: fact.value for name, fact in record.facts.items()}
