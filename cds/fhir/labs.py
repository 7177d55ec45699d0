"""Observations by LOINC group: values in a target unit with their reference-range ULN, newest first."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cds.fhir import parse
from cds.fhir.element import Quantity
from cds.fhir.index import ResourceIndex, source
from cds.fhir.observation import read_observation
from cds.fhir.quantities import to_unit
from cds.fhir.terminology import ValueSet
from cds.fhir.types import Source
from cds.units import UnitError

_CLOCK_SKEW = timedelta(minutes=5)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Reading:
    value: float
    time: datetime
    source: Source
    uln: float | None  # referenceRange.high in the same unit as value


@dataclass(frozen=True)
class Want:
    """Which readings to collect: unit, optional molar mass and how far back."""

    unit: str
    max_age_days: float | None
    molar_mass_g_mol: float | None = None


class Labs:
    def __init__(self, index: ResourceIndex, now: datetime, statuses: frozenset[str]) -> None:
        self.index = index
        self.now = now
        self.statuses = statuses
        self._by_code: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        self._times: dict[tuple[str, str], datetime] = {}
        for key, found in index.coded("Observation"):
            for coding in found.codings:
                if coding.system and coding.code:
                    self._by_code[(coding.system, coding.code.strip())].append(key)

    def readings(self, group: ValueSet, want: Want, *, limit: int | None = None) -> list[Reading]:
        """Usable readings of ``group``, newest first; at most ``limit`` of them."""
        keys = {k for code, found in self._by_code.items() if code in group.by_code for k in found}
        if not keys:
            return []
        oldest = self.now - timedelta(days=want.max_age_days) if want.max_age_days is not None else None
        found: list[Reading] = []
        for when, key in sorted(((self._raw_time(k), k) for k in keys), reverse=True):
            if limit is not None and len(found) >= limit or oldest and _EPOCH < when < oldest:
                break  # sorted newest first: nothing further can qualify
            reading = self._reading(key, want)
            if reading is not None:
                found.append(reading)
        return sorted(found, key=lambda r: r.time, reverse=True)

    def latest(self, group: ValueSet, want: Want) -> Reading | None:
        found = self.readings(group, want, limit=1)
        return found[0] if found else None

    def _raw_time(self, key: tuple[str, str]) -> datetime:
        """The effective time read from the JSON (for ordering before reading); _EPOCH if unreadable."""
        if key not in self._times:
            self._times[key] = self._parse_time(key)
        return self._times[key]

    def _parse_time(self, key: tuple[str, str]) -> datetime:
        raw = self.index.raw(key)
        period = raw.get("effectivePeriod")
        value = raw.get("effectiveDateTime") or (period.get("start") if isinstance(period, dict) else None)
        if not isinstance(value, str):
            return _EPOCH
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return parse.as_datetime(value) or _EPOCH
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def _reading(self, key: tuple[str, str], want: Want) -> Reading | None:
        obs = self.index.read(key, read_observation)
        if obs is None or obs.status not in self.statuses:
            return None
        when = obs.when
        if when is None or not self._in_window(key, when, want.max_age_days):
            return None
        quantity = obs.quantity
        if quantity is None or quantity.value is None:
            return None
        try:
            value = to_unit(quantity.value, quantity.unit, want.unit, molar_mass_g_mol=want.molar_mass_g_mol)
        except UnitError as exc:
            self.index.warnings.append(f"{key[0]}/{key[1]}: {exc} (value not used)")
            return None
        if quantity.comparator:
            self.index.warnings.append(
                f"{key[0]}/{key[1]}: reported as '{quantity.comparator}{quantity.text}', used as the limit"
            )
        return Reading(value, when, source(key, when), _uln(obs.high, want, quantity.unit))

    def _in_window(self, key: tuple[str, str], when: datetime, max_age_days: float | None) -> bool:
        if when > self.now + _CLOCK_SKEW:
            self.index.warnings.append(f"{key[0]}/{key[1]}: dated in the future ({when.isoformat()}), not used")
            return False
        return max_age_days is None or self.now - when <= timedelta(days=max_age_days)


def _uln(high: Quantity | None, want: Want, value_unit: str | None) -> float | None:
    if high is None or high.value is None:
        return None
    try:
        unit = high.unit or value_unit  # a bare number shares the value's unit
        return to_unit(high.value, unit, want.unit, molar_mass_g_mol=want.molar_mass_g_mol)
    except UnitError:
        return None
