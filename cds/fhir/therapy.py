"""Imatinib therapy records (orders and statements) and the timeline of daily doses they describe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds.fhir import parse
from cds.fhir.dosing import Dosing, product, read_dosing
from cds.fhir.element import Period
from cds.fhir.index import ResourceIndex, source
from cds.fhir.medication import Dosage, MedicationFacts
from cds.fhir.terminology import Concept, ValueSet
from cds.fhir.types import Source

# Statuses that describe therapy the patient is on or was on (not drafts, plans or errors).
_REQUEST_HISTORY = {"active", "on-hold", "completed", "stopped"}
_STATEMENT_HISTORY = {"active", "on-hold", "completed", "stopped"}
CURRENT = {"active", "on-hold"}


@dataclass(frozen=True)
class Therapy:
    key: tuple[str, str]
    status: str
    start: datetime | None
    end: datetime | None
    dosing: Dosing
    strength_mg: float | None
    status_reason: Concept | None = None
    dosages: tuple[Dosage, ...] = ()  # the scheduled lines, kept to combine several drafts into one regimen
    prior: str | None = None  # priorPrescription reference: the order this one renews
    product_name: str | None = None  # the imatinib value-set member matched (identifies the product)
    members: tuple[tuple[str, str], ...] = ()  # orders started together and read as this one record

    @property
    def sources(self) -> list[Source]:
        return [source(key, self.start) for key in self.members] or [self.source]

    @property
    def source(self) -> Source:
        return source(self.key, self.start)

    @property
    def last_seen(self) -> datetime | None:
        return self.end or self.start


@dataclass(frozen=True)
class Segment:
    """A run of therapy at one daily dose (contiguous records with the same mg/day merged)."""

    start: datetime
    end: datetime | None
    daily_mg: float | None
    interval_h: float | None
    therapy: Therapy


def request_therapy(
    index: ResourceIndex, key: tuple[str, str], request: MedicationFacts, imatinib: ValueSet
) -> Therapy:
    bounds = _bounds(request.dosages)
    validity = request.validity
    start = _first(bounds and bounds.start, validity and validity.start, request.authored_on)
    end = parse.as_period_end(bounds and bounds.end or validity and validity.end or None)
    return _therapy(index, key, request, imatinib, start, end, prior=request.prior_prescription)


def statement_therapy(
    index: ResourceIndex, key: tuple[str, str], statement: MedicationFacts, imatinib: ValueSet
) -> Therapy:
    period = statement.period
    point = parse.as_datetime(statement.effective)
    start = _first(period and period.start, point, statement.date_asserted)
    end = parse.as_period_end(period.end) if period else point
    return _therapy(index, key, statement, imatinib, start, end, prior=None)


def _therapy(
    index: ResourceIndex,
    key: tuple[str, str],
    med: MedicationFacts,
    imatinib: ValueSet,
    start: datetime | None,
    end: datetime | None,
    *,
    prior: str | None,
) -> Therapy:
    drug = product(index, key, med, imatinib)
    return Therapy(
        key,
        str(med.status),
        start,
        end,
        read_dosing(med.dosages, drug.strength_mg),
        drug.strength_mg,
        med.status_reason,
        dosages=med.dosages,
        prior=prior,
        product_name=drug.imatinib.member.name if drug.imatinib else None,
    )


def _bounds(dosages: Sequence[Dosage]) -> Period | None:
    for dosage in dosages:
        if dosage.timing and dosage.timing.bounds:
            return dosage.timing.bounds
    return None


def _first(*values: object) -> datetime | None:
    for value in values:
        if value:
            return parse.as_datetime(value)
    return None


def history(requests: list[Therapy], statements: list[Therapy]) -> list[Therapy]:
    """Therapy the patient is or was on: orders when there are any, else statements; by start time."""
    chosen = [t for t in requests if t.status in _REQUEST_HISTORY]
    if not chosen:
        chosen = [t for t in statements if t.status in _STATEMENT_HISTORY]
    return sorted((t for t in chosen if t.start is not None), key=lambda t: t.start or datetime.min)


def current(records: list[Therapy]) -> Therapy | None:
    """The latest-starting record that is active or on hold."""
    live = [t for t in records if t.status in CURRENT]
    return live[-1] if live else None


def segments(records: list[Therapy], now: datetime, lookback: timedelta) -> list[Segment]:
    """Dose segments of the current course (a gap longer than ``lookback`` starts a new course)."""
    runs: list[Segment] = []
    for i, record in enumerate(records):
        start = record.start or now
        nxt = records[i + 1].start if i + 1 < len(records) else None
        end = min((t for t in (record.end, nxt) if t is not None), default=None)
        if runs and runs[-1].end is not None and start - runs[-1].end > lookback:
            runs = []
        segment = Segment(start, end, record.dosing.daily_mg, record.dosing.interval_h, record)
        if runs and runs[-1].daily_mg == segment.daily_mg:
            segment = Segment(runs[-1].start, end, segment.daily_mg, segment.interval_h, record)
            runs[-1] = segment
        else:
            runs.append(segment)
    return runs


def segment_at(runs: list[Segment], when: datetime) -> Segment | None:
    inside = [s for s in runs if s.start <= when and (s.end is None or when < s.end)]
    return inside[-1] if inside else None
