"""Log-linear extrapolation of a random-time level to the trough (Wang et al. 2009; pk.md 3).

``Cmin = C(t) * exp(ke * (t - tau))`` with ``t`` the hours after the last dose and ``ke = 0.041 /h``.
It assumes mono-exponential decline, so it is flagged within 6 h of a dose (absorption phase) and
before steady state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cds.numbers import format_number
from cds.pk.inputs import STEADY_STATE_H, DoseHistory, Level

WANG_KE_PER_H = 0.041
ABSORPTION_PHASE_H = 6.0


@dataclass(frozen=True)
class LogLinearEstimate:
    cmin_ng_ml: float
    level_ng_ml: float
    hours_after_dose: float
    reliable: bool
    reason: str


def loglinear_trough(conc_ng_ml: float, hours_after_dose: float, interval_h: float) -> float:
    """Wang 2009 trough from one level.

    Examples
    --------
    >>> round(loglinear_trough(1500, 3, 24))  # pk.md 4.1: Wang on (3 h, 1500) gives 634
    634
    """
    return conc_ng_ml * math.exp(WANG_KE_PER_H * (hours_after_dose - interval_h))


def loglinear_estimate(history: DoseHistory, level: Level, interval_h: float) -> LogLinearEstimate | None:
    """Extrapolate ``level`` with reliability flags; None when no dose precedes it."""
    t_h = history.hours(level.time)
    after = history.hours_after_last_dose(t_h)
    if after is None:
        return None
    reasons = []
    if after < ABSORPTION_PHASE_H:
        reasons.append(
            f"sampled {after:.1f} h after a dose (absorption phase, < {format_number(ABSORPTION_PHASE_H)} h)"
        )
    on_regimen = history.hours_on_regimen(t_h, interval_h)
    if on_regimen < STEADY_STATE_H:
        reasons.append(
            f"not at steady state ({on_regimen:.0f} h of regular dosing, < {format_number(STEADY_STATE_H)} h)"
        )
    return LogLinearEstimate(
        cmin_ng_ml=loglinear_trough(level.ng_ml, after, interval_h),
        level_ng_ml=level.ng_ml,
        hours_after_dose=after,
        reliable=not reasons,
        reason="; ".join(reasons),
    )
