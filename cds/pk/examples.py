"""A shipped example patient for doctests and the CLI help: male, CML, 70 kg, 50 y, 400 mg q24h.

It is the patient of the Tucuxi cross-check in pk.md 6.2: 60 days of 400 mg every 24 h from
2026-01-01 08:00 UTC, levels on day 50 (steady state).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cds.pk.inputs import Covariates, DoseEvent, DoseHistory, Level, Regimen, build_history

START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
DAY50_DOSE = START + timedelta(days=49)


def example_covariates() -> Covariates:
    return Covariates(sex="male", age_y=50, weight_kg=70, indication="CML")


def example_regimen() -> Regimen:
    return Regimen(dose_mg=400, interval_h=24, since=START)


def example_doses(days: int = 60) -> list[DoseEvent]:
    return [DoseEvent(START + timedelta(days=i), 400) for i in range(days)]


def example_levels(*samples: tuple[float, float]) -> list[Level]:
    """Levels ``(hours after the day-50 dose, ng/mL)``."""
    return [Level(DAY50_DOSE + timedelta(hours=h), c) for h, c in samples]


def example_history() -> DoseHistory:
    return build_history(example_regimen(), example_doses(), [])
