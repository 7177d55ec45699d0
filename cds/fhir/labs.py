"""Observations by LOINC group: values in a target unit with their reference-range ULN, newest first.

Values are read by cds.fhir.values (quantities with comparators, strings, interpretation flags). A value
reported only as a bound is kept as a censored reading when the fact may be censored (``Want.censorable``),
else it is unreadable; ``newest`` tells the mappers when the newest result of a kind cannot be read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from cds.dates import day_and_time
from cds.fhir import parse
from cds.fhir.element import Quantity
from cds.fhir.index import ResourceIndex, source
from cds.fhir.observation import read_observation, read_observed_value
from cds.fhir.quantities import to_unit
from cds.fhir.terminology import Concept, ValueSet
from cds.fhir.types import Source
from cds.fhir.values import SIDE_SIGN, Unreadable
from cds.units import UnitError

_CLOCK_SKEW = timedelta(minutes=5)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Reading:
    value: float
    time: datetime
    source: Source
    uln: float | None  # referenceRange.high in the same unit as value
    side: str | None = None  # censored: the true value lies on this side of ``value`` (below, above, ...)
    note: str = ""
    reported: str = ""  # the result as the laboratory wrote it, when converting its unit changed the number

    @property
    def shown(self) -> str:
        return SIDE_SIGN.get(self.side or "", "") + f"{self.value:g}"


@dataclass(frozen=True)
class UnreadableResult:
    """The newest result of a kind is present but its value cannot be read."""

    source: Source
    reason: Unreadable

    def describe(self) -> str:
        return f"{self.source.resource_type}/{self.source.id}: {self.reason.describe()}"

    def for_clinician(self) -> str:
        """The result by its date, not its resource id (which stays on the fact's source for reviewers)."""
        when = self.source.effective
        dated = f"Result of {day_and_time(when.astimezone(UTC))} UTC" if when else "Undated result"
        return f"{dated}: {self.reason.describe()}"


@dataclass(frozen=True)
class Want:
    """Which readings to collect: unit, optional molar mass, how far back, whether a bound may stand for the
    value (censorable) and which values are plausible (to read an ambiguous "1,200")."""

    unit: str
    max_age_days: float | None
    molar_mass_g_mol: float | None = None
    censorable: bool = False
    plausible: Callable[[float], bool] | None = None


class Labs:
    def __init__(
        self, index: ResourceIndex, now: datetime, statuses: frozenset[str], comma_rule: str = "thousands"
    ) -> None:
        self.index = index
        self._read_value = partial(read_observed_value, comma_rule=comma_rule)  # one reader: cached per request
        self.now = now
        self.statuses = statuses
        self._by_code: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        self._times: dict[tuple[str, str], datetime] = {}
        # a result is read once per wanted unit: the never-silent check and the readings scan the same results
        self._results: dict[tuple[tuple[str, str], Want], Reading | UnreadableResult | None] = {}
        self._uncoded: list[tuple[tuple[str, str], Concept]] = []  # text only: matched by name where a set allows
        for key, found in index.coded("Observation"):
            coded = [(c.system, c.code.strip()) for c in found.codings if c.system and c.code]
            for code in coded:
                self._by_code[code].append(key)
            if not coded:
                self._uncoded.append((key, found))

    def _keys(self, group: ValueSet) -> list[tuple[str, str]]:
        """The results of ``group``: by code, and by name for a text-only result where the set matches names."""
        keys = [k for code, found in self._by_code.items() if code in group.by_code for k in found]
        if group.names is not None:
            keys += [k for k, concept in self._uncoded if group.match(concept) is not None]
        return list(dict.fromkeys(keys))

    def readings(self, group: ValueSet, want: Want, *, limit: int | None = None) -> list[Reading]:
        """Usable readings of ``group``, newest first; at most ``limit`` of them."""
        keys = self._keys(group)
        if not keys:
            return []
        oldest = self.now - timedelta(days=want.max_age_days) if want.max_age_days is not None else None
        found: list[Reading] = []
        for when, key in sorted(((self._raw_time(k), k) for k in keys), reverse=True):
            if limit is not None and len(found) >= limit or oldest and _EPOCH < when < oldest:
                break  # sorted newest first: nothing further can qualify
            reading = self._reading(key, want)
            if isinstance(reading, Reading):
                found.append(reading)
        return sorted(found, key=lambda r: r.time, reverse=True)

    def newest_unreadable(self, group: ValueSet, want: Want) -> UnreadableResult | None:
        """The newest usable-status result of ``group`` in the window, if its value cannot be read."""
        results = [r for r in (self._reading(k, want) for k in self._keys(group)) if r is not None]
        if not results:
            return None
        newest = max(results, key=lambda r: (r.source.effective or _EPOCH, isinstance(r, Reading)))
        return newest if isinstance(newest, UnreadableResult) else None

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

    def _reading(self, key: tuple[str, str], want: Want) -> Reading | UnreadableResult | None:
        """The reading, or why its value cannot be read; None when the result is not usable at all (status,
        date, out of the window), which is not a finding about its value."""
        if (key, want) not in self._results:
            self._results[(key, want)] = self._read(key, want)
        return self._results[(key, want)]

    def _read(self, key: tuple[str, str], want: Want) -> Reading | UnreadableResult | None:
        obs = self.index.read(key, read_observation)
        if obs is None or obs.status not in self.statuses:
            return None
        when = obs.when
        if when is None or not self._in_window(key, when, want.max_age_days):
            return None
        found = self.index.read(key, self._read_value)
        src = source(key, when)
        if found is None:
            return None  # an element of another datatype: the index warned, naming it
        if isinstance(found, Unreadable):
            return UnreadableResult(src, found)
        if found.side is not None and not want.censorable:
            return UnreadableResult(src, Unreadable(f"reported only as a bound ({found.shown})"))
        values = []
        for number in found.readings:
            try:
                values.append(to_unit(number, found.unit, want.unit, molar_mass_g_mol=want.molar_mass_g_mol))
            except UnitError as exc:
                self.index.warnings.append(f"{key[0]}/{key[1]}: {exc} (value not used)")
                return UnreadableResult(src, Unreadable(f"{found.shown!r}: {exc}"))
        value = values[0]
        if found.ambiguous and want.plausible is not None and not want.plausible(value):
            readings = " or ".join(f"{v:g} {want.unit}" for v in values)
            return UnreadableResult(src, Unreadable(f"{found.shown!r} is ambiguous ({readings})"))
        if found.note:
            self.index.warnings.append(f"{key[0]}/{key[1]}: {found.note}")
        if found.side is not None:
            self.index.warnings.append(f"{key[0]}/{key[1]}: reported as {found.shown!r}, kept as a bound")
        reported = found.shown if not math.isclose(value, found.value, rel_tol=1e-9) else ""
        return Reading(value, when, src, _uln(obs.high, want, found.unit), found.side, found.note, reported)

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
