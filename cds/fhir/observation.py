"""The elements of an Observation that the facts read, checked one by one (no whole-resource validation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from cds.fhir import parse
from cds.fhir.element import Element
from cds.fhir.terminology import Concept

_UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Quantity:
    value: float | None
    unit: str | None  # UCUM code when the quantity says it is UCUM, else the human unit string
    comparator: str | None
    text: str  # the value as the R4B model prints it (for warnings)


@dataclass(frozen=True)
class ObservationFacts:
    status: str | None
    code: Concept | None
    when: datetime | None
    quantity: Quantity | None
    high: Quantity | None  # the first referenceRange.high with a value
    value_concept: Concept | None
    value_boolean: bool | None

    @property
    def value_code(self) -> str | None:
        codings = self.value_concept.codings if self.value_concept else ()
        return codings[0].code if codings and codings[0].code else None


def read_observation(obs: Element) -> ObservationFacts:
    highs = (quantity(r.child("high")) for r in obs.children("referenceRange"))
    return ObservationFacts(
        status=obs.code("status"),
        code=obs.concept("code"),
        when=_effective(obs),
        quantity=quantity(obs.child("valueQuantity")),
        high=next((h for h in highs if h is not None and h.value is not None), None),
        value_concept=obs.concept("valueCodeableConcept"),
        value_boolean=obs.boolean("valueBoolean"),
    )


def quantity(element: Element | None) -> Quantity | None:
    if element is None:
        return None
    value, code, unit = element.decimal("value"), element.code("code"), element.string("unit")
    system = element.uri("system")
    raw = element.get("value")
    text = str(Decimal(str(raw)) if isinstance(raw, float) else raw)
    return Quantity(value, code if code and system in (None, _UCUM) else unit, element.code("comparator"), text)


def _effective(obs: Element) -> datetime | None:
    """effective[x] (a period's start), else issued: the order of ``index.effective`` for an Observation."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        if obs.has(name):
            return parse.as_datetime(obs.date_time(name))
    period = obs.child("effectivePeriod")
    if period is not None and period.has("start"):
        return parse.as_datetime(period.date_time("start"))
    return parse.as_datetime(obs.date_time("issued")) if obs.has("issued") else None
