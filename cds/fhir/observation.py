"""The elements of an Observation that the facts read, checked one by one (no whole-resource validation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cds.fhir import parse
from cds.fhir.element import Element, ElementError, Quantity, first_code
from cds.fhir.terminology import Concept
from cds.fhir.values import ObservedValue, Unreadable, read_value

_YES = frozenset({"yes", "Y", "373066001"})
_NO = frozenset({"no", "N", "373067005"})


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
        return first_code(self.value_concept)

    @property
    def answer(self) -> bool | None:
        """A yes/no answer: valueBoolean, or a Y/N (v2 0136) or SNOMED CT yes/no code; None when it is neither."""
        if self.value_boolean is not None:
            return bool(self.value_boolean)
        code = self.value_code
        return True if code in _YES else False if code in _NO else None


def read_observation(obs: Element) -> ObservationFacts:
    highs = (r.quantity("high") for r in obs.children("referenceRange"))
    return ObservationFacts(
        status=obs.code("status"),
        code=obs.concept("code"),
        when=_effective(obs),
        quantity=obs.quantity("valueQuantity"),
        high=next((h for h in highs if h is not None and h.value is not None), None),
        value_concept=obs.concept("valueCodeableConcept"),
        value_boolean=obs.boolean("valueBoolean"),
    )


def read_observed_value(obs: Element, comma_rule: str = "thousands") -> ObservedValue | Unreadable:
    """value[x] as a number (cds.fhir.values); a bare number takes the unit of the referenceRange. A value
    element that is not of its datatype makes the value unreadable (reported), not the resource unused."""
    try:
        unit = _range_unit(obs)
    except ElementError:
        unit = None  # a malformed referenceRange only loses the unit it could have given
    try:
        return read_value(obs, unit, comma_rule)
    except ElementError as exc:
        return Unreadable(f"{exc.path.rsplit('.resource.', 1)[-1]}: {exc.message}")


def _range_unit(obs: Element) -> str | None:
    for found in obs.children("referenceRange"):
        for bound in (found.quantity("high"), found.quantity("low")):
            if bound is not None and bound.unit:
                return bound.unit
    return None


def _effective(obs: Element) -> datetime | None:
    """effective[x] (a period's start), else issued: the order of ``index.effective`` for an Observation."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        if obs.has(name):
            return parse.as_datetime(obs.date_time(name))
    period = obs.child("effectivePeriod")
    if period is not None and period.has("start"):
        return parse.as_datetime(period.date_time("start"))
    return parse.as_datetime(obs.date_time("issued")) if obs.has("issued") else None
