"""Plain, validated inputs of the estimator: covariates, regimen, dose events and measured levels.

Times are timezone-aware datetimes; inside the estimator they become hours since the first dose
(``DoseHistory``). Every constructor rejects what the estimator cannot use with an ``EstimationError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from cds.errors import EstimationError

SEXES = {"male": 1.0, "female": 0.0, "unknown": 0.5}
INDICATIONS = {"CML": 0.0, "GIST": 1.0}
_SHORT_HISTORY = 200  # doses; see hours_on_regimen
STEADY_STATE_H = 96.0  # ~5.7 half-lives of 16.8 h (pk.md 4.3: warn under ~4 days on a dose)


def _finite(value: float, what: str, *, positive: bool = False) -> float:
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        kind = "a positive finite number" if positive else "a finite number"
        raise EstimationError(f"Invalid `{what}`: got {value!r}, must be {kind}")
    return number


def _aware(time: datetime, what: str) -> datetime:
    if not isinstance(time, datetime) or time.tzinfo is None or time.utcoffset() is None:
        raise EstimationError(f"Invalid `{what}`: got {time!r}, must be a timezone-aware datetime")
    return time


@dataclass(frozen=True)
class Covariates:
    """Patient covariates; ``sex`` is male, female or unknown and ``indication`` CML or GIST."""

    sex: str
    age_y: float
    weight_kg: float
    indication: str
    agp_g_l: float | None = None
    albumin_g_l: float | None = None

    def __post_init__(self) -> None:
        if self.sex not in SEXES:
            raise EstimationError(f"Invalid `sex`: got {self.sex!r}, must be one of {sorted(SEXES)}")
        if self.indication not in INDICATIONS:
            raise EstimationError(
                f"Invalid `indication`: got {self.indication!r}, must be one of {sorted(INDICATIONS)}"
            )
        _finite(self.age_y, "age_y")
        _finite(self.weight_kg, "weight_kg", positive=True)
        for name in ("agp_g_l", "albumin_g_l"):
            value = getattr(self, name)
            if value is not None:
                _finite(value, name, positive=True)

    def values(self) -> dict[str, float]:
        """Numeric covariates under the model's names (``male``, ``gist`` coded 1/0)."""
        out = {
            "age_y": float(self.age_y),
            "weight_kg": float(self.weight_kg),
            "male": SEXES[self.sex],
            "gist": INDICATIONS[self.indication],
        }
        for name in ("agp_g_l", "albumin_g_l"):
            if getattr(self, name) is not None:
                out[name] = float(getattr(self, name))
        return out


@dataclass(frozen=True)
class Regimen:
    """The current regimen: ``dose_mg`` every ``interval_h``; ``since`` None means long-standing."""

    dose_mg: float
    interval_h: float
    since: datetime | None = None

    def __post_init__(self) -> None:
        _finite(self.dose_mg, "regimen.dose_mg", positive=True)
        _finite(self.interval_h, "regimen.interval_h", positive=True)
        if self.since is not None:
            _aware(self.since, "regimen.since")

    @property
    def daily_mg(self) -> float:
        return self.dose_mg * 24.0 / self.interval_h


@dataclass(frozen=True)
class DoseEvent:
    time: datetime
    mg: float

    def __post_init__(self) -> None:
        _aware(self.time, "dose.time")
        _finite(self.mg, "dose.mg", positive=True)


@dataclass(frozen=True)
class Level:
    """A measured plasma concentration (parent imatinib, ng/mL)."""

    time: datetime
    ng_ml: float

    def __post_init__(self) -> None:
        _aware(self.time, "level.time")
        _finite(self.ng_ml, "level.ng_ml", positive=True)


@dataclass(frozen=True, eq=False)
class DoseHistory:
    """Doses in hours since ``origin``; with ``ss_dose_mg`` set, ``ss_dose_mg`` every ``ss_interval_h``
    was given for ever before the first dose (the last one at ``-ss_interval_h``)."""

    origin: datetime
    times_h: np.ndarray
    mg: np.ndarray
    ss_dose_mg: float | None = None
    ss_interval_h: float = 24.0
    regimen_dose_mg: float = field(default=0.0)

    def hours(self, time: datetime) -> float:
        return (time - self.origin).total_seconds() / 3600.0

    def hours_after_last_dose(self, t_h: float) -> float | None:
        before = self.times_h[self.times_h < t_h]  # a dose at the sample time comes after the sample
        return float(t_h - before[-1]) if before.size else None

    def interval_before(self, t_h: float, default_h: float) -> float:
        """The dosing interval the patient was on at ``t_h``: the shortest of the last three gaps between doses
        before it (a missed dose only lengthens a gap), else ``default_h``; a draft that changes the interval
        later does not change the interval a level was drawn on."""
        before = self.times_h[self.times_h < t_h][-4:].tolist()
        gaps = [b - a for a, b in zip(before, before[1:], strict=False) if b > a]
        return min(gaps) if gaps else default_h

    def hours_on_regimen(self, t_h: float, interval_h: float) -> float:
        """How long regular dosing at the regimen dose has run before ``t_h`` (inf if since for ever)."""
        idx = int(np.searchsorted(self.times_h, t_h, side="left")) - 1
        if idx < 0:
            return math.inf if self.ss_dose_mg is not None else 0.0
        if self.mg[idx] != self.regimen_dose_mg:
            return 0.0
        # step i -> i+1 is regular when both doses are the regimen dose and no dose is missing between them
        if idx > _SHORT_HISTORY:
            at_dose = self.mg[: idx + 1] == self.regimen_dose_mg
            regular = at_dose[:-1] & at_dose[1:] & (np.diff(self.times_h[: idx + 1]) <= 1.5 * interval_h)
            breaks = np.flatnonzero(~regular)
            start = int(breaks[-1]) + 1 if breaks.size else 0
        else:  # the same walk back in Python floats (numpy's call overhead dominates on a few dozen doses)
            times, mg = self.times_h[: idx + 1].tolist(), self.mg[: idx + 1].tolist()
            dose, longest = self.regimen_dose_mg, 1.5 * interval_h
            start = idx
            while start > 0 and mg[start - 1] == dose and times[start] - times[start - 1] <= longest:
                start -= 1
        if start == 0 and self.ss_dose_mg is not None:
            return math.inf
        return float(t_h - self.times_h[start])


def regular_doses(regimen: Regimen, until: datetime) -> list[DoseEvent]:
    """Doses of ``regimen`` from ``regimen.since`` up to and including ``until`` (at least the first)."""
    if regimen.since is None:
        raise EstimationError("Invalid `regimen.since`: needed to generate doses, got None")
    step = timedelta(hours=regimen.interval_h)
    count = int((until - regimen.since) / step) + 1
    return [DoseEvent(regimen.since + i * step, regimen.dose_mg) for i in range(max(count, 1))]


def build_history(regimen: Regimen, doses: Sequence[DoseEvent], levels: Sequence[Level]) -> DoseHistory:
    """The dose history the levels are predicted from; checks that every level follows a dose.

    With recorded ``doses`` and no ``regimen.since`` the patient is taken to be at steady state on the
    regimen before the first recorded dose. Without recorded doses, regular doses from ``since`` are used.
    """
    steady = regimen.since is None
    if doses:
        ordered = sorted(doses, key=lambda d: d.time)
        origin = ordered[0].time
        hours = np.array([(d.time - origin).total_seconds() / 3600.0 for d in ordered])
        amounts = np.array([d.mg for d in ordered], dtype=float)
    elif regimen.since is not None:  # regular dosing from `since` up to the last level, as arrays
        origin = regimen.since
        last_h = max(((lv.time - origin).total_seconds() / 3600.0 for lv in levels), default=0.0)
        hours = np.arange(max(int(last_h // regimen.interval_h) + 1, 1)) * regimen.interval_h
        amounts = np.full(hours.size, regimen.dose_mg)
    else:
        raise EstimationError("levels need dose times: give dose events or `regimen.since`, got neither")
    for i, level in enumerate(levels):
        if level.time < origin or (level.time == origin and not steady):
            raise EstimationError(
                f"Invalid `levels[{i}].time`: got {level.time.isoformat()}, "
                f"must be after the first dose ({origin.isoformat()})"
            )
    return DoseHistory(
        origin=origin,
        times_h=hours,
        mg=amounts,
        ss_dose_mg=regimen.dose_mg if steady else None,
        ss_interval_h=regimen.interval_h,
        regimen_dose_mg=regimen.dose_mg,
    )
