"""Context of strong CYP3A4 inducers: avoidable or not, how long the course is, when one stopped (issue 13).

The label's "at least 50% more imatinib" is for sustained, unavoidable co-administration (clinical-rules.md §1.5,
§9.3). So besides comed.strong_cyp3a4_inducer (ClinicalMapper) the rules need to know whether the inducer is an
avoidable supplement (value set cyp3a4-avoidable-inducers), how long a prescribed course is planned to last
(timing.repeat.boundsPeriod or boundsDuration of an order, a statement's effectivePeriod) and whether an inducer
stopped recently while none is active (the raised dose returns to the pre-inducer dose).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.fhir import parse
from cds.fhir.dosing import product
from cds.fhir.index import ResourceIndex, source
from cds.fhir.medication import MedicationFacts, read_request, read_statement
from cds.fhir.sink import FactSink
from cds.fhir.terminology import Terminology
from cds.fhir.types import Source

_STOPPED = {"stopped", "completed"}
_DURATION_DAYS = {"min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25}


@dataclass(frozen=True)
class InducerUse:
    name: str
    source: Source
    active: bool
    start: datetime | None
    end: datetime | None  # planned or actual end; None = open-ended
    avoidable: bool


class InducerMapper:
    def __init__(self, index: ResourceIndex, sink: FactSink, terminology: Terminology, now: datetime) -> None:
        self.index, self.sink, self.terms, self.now = index, sink, terminology, now

    def run(self) -> None:
        uses = list(self._uses())
        active = [u for u in uses if u.active]
        avoidable = [u for u in active if u.avoidable]
        prescribed = [u for u in active if not u.avoidable]
        if avoidable:
            self.sink.put("comed.avoidable_inducer_name", avoidable[0].name, [avoidable[0].source])
        if prescribed:
            first = prescribed[0]
            self.sink.put("comed.unavoidable_inducer_name", first.name, [first.source])
            self._course(prescribed)
        stopped = [u for u in uses if not u.active and u.end is not None and u.end <= self.now]
        if stopped and not active:
            last = max(stopped, key=lambda u: u.end or self.now)
            assert last.end is not None
            self.sink.put("comed.stopped_inducer_name", last.name, [last.source])
            self.sink.put("comed.inducer_stopped_days", _days(self.now - last.end), [last.source], "since it stopped")

    def _course(self, prescribed: list[InducerUse]) -> None:
        """The longest planned course; none when any course is open-ended (that one is sustained)."""
        if any(u.end is None or u.start is None for u in prescribed):
            return
        longest = max(prescribed, key=lambda u: (u.end or self.now) - (u.start or self.now))
        assert longest.end is not None and longest.start is not None
        note = f"planned {longest.start.date()} to {longest.end.date()}"
        self.sink.put("comed.inducer_course_days", _days(longest.end - longest.start), [longest.source], note)

    def _uses(self) -> Iterator[InducerUse]:
        strong, avoidable = self.terms["cyp3a4-strong-inducers"], self.terms["cyp3a4-avoidable-inducers"]
        topical = self.terms["topical-forms"]
        drafts = set(self.index.request.context_draft_keys)
        for kind, reader in (("MedicationRequest", read_request), ("MedicationStatement", read_statement)):
            for key in self.index.keys(kind):
                med = self.index.read(key, reader)
                if med is None:
                    continue
                drug = product(self.index, key, med, self.terms["imatinib"])
                match = strong.match(drug.concept)
                if match is None or topical.match(drug.concept):
                    continue
                is_draft = key in drafts
                start, end = _span(
                    med, self.index.raw(key), kind == "MedicationRequest", self.now if is_draft else None
                )
                running = is_draft or (med.status == "active" and (end is None or end > self.now))
                if not running and med.status not in _STOPPED and med.status != "active":
                    continue
                yield InducerUse(
                    match.member.name,
                    source(key, start),
                    running,
                    start,
                    end,
                    avoidable.match(drug.concept) is not None,
                )


def _span(
    med: MedicationFacts, raw: Mapping[str, Any], is_order: bool, draft_start: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Start and (planned) end: an order's boundsPeriod or boundsDuration, else a statement's effectivePeriod."""
    start: datetime | None = None
    end: datetime | None = None
    for dosage in med.dosages if is_order else ():
        bounds = dosage.timing.bounds if dosage.timing else None
        if bounds is not None:
            start, end = parse.as_datetime(bounds.start), parse.as_period_end(bounds.end)
            break
    if not is_order and med.period is not None:
        start, end = parse.as_datetime(med.period.start), parse.as_period_end(med.period.end)
    start = start or draft_start or parse.as_datetime(med.authored_on or med.effective or med.date_asserted)
    duration = _bounds_duration_days(raw) if is_order else None
    if end is None and duration is not None and start is not None:
        end = start + timedelta(days=duration)
    return start, end


def _bounds_duration_days(raw: Mapping[str, Any]) -> float | None:
    """dosageInstruction[].timing.repeat.boundsDuration in days (JSON read step by step; not all models keep it)."""
    dosages = raw.get("dosageInstruction")
    for dosage in dosages if isinstance(dosages, list) else []:
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        duration = repeat.get("boundsDuration") if isinstance(repeat, dict) else None
        if not isinstance(duration, dict):
            continue
        value, unit = duration.get("value"), duration.get("code") or duration.get("unit")
        if isinstance(value, int | float) and not isinstance(value, bool) and str(unit) in _DURATION_DAYS:
            return float(value) * _DURATION_DAYS[str(unit)]
    return None


def _days(delta: timedelta) -> float:
    return round(max(delta.total_seconds(), 0.0) / 86400, 2)
