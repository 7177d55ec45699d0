"""Log-linear extrapolation (Wang 2009) against pk.md 3 and its reliability flags."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from cds.pk.examples import DAY50_DOSE, example_history, example_levels
from cds.pk.inputs import DoseEvent, Level, Regimen, build_history
from cds.pk.loglinear import loglinear_estimate, loglinear_trough
from cds.pk.predict import steady_state_conc

MALE_CML = (16.596, 393.2, 0.609)


@pytest.mark.parametrize(
    ("hours", "expected"),
    [(1, 409), (2, 509), (3, 565), (4, 596), (6, 623), (12, 632), (20, 626)],
)
def test_wang_on_the_typical_curve_matches_pk_md_section_3(hours: float, expected: float) -> None:
    """pk.md 3: sampling time -> Wang estimate for the male CML patient at steady state (true Cmin 623)."""
    level = float(steady_state_conc(400, 24, *MALE_CML, hours))
    assert loglinear_trough(level, hours, 24) == pytest.approx(expected, abs=1.0)


def test_wang_at_the_trough_is_the_level_itself() -> None:
    assert loglinear_trough(850.0, 12.0, 12.0) == 850.0


def test_early_sample_is_flagged_absorption_phase() -> None:
    estimate = loglinear_estimate(example_history(), example_levels((3, 1500))[0], 24)
    assert estimate is not None
    assert not estimate.reliable
    assert "absorption phase" in estimate.reason
    assert estimate.cmin_ng_ml == pytest.approx(1500 * np.exp(0.041 * (3 - 24)))


def test_late_sample_at_steady_state_is_reliable() -> None:
    estimate = loglinear_estimate(example_history(), example_levels((12, 900))[0], 24)
    assert estimate is not None and estimate.reliable and estimate.reason == ""


def test_sample_before_steady_state_is_flagged() -> None:
    start = DAY50_DOSE
    doses = [DoseEvent(start + timedelta(days=i), 400) for i in range(2)]
    level = Level(start + timedelta(days=1, hours=12), 700)
    history = build_history(Regimen(400, 24, since=start), doses, [level])
    estimate = loglinear_estimate(history, level, 24)
    assert estimate is not None and not estimate.reliable
    assert "not at steady state (36 h" in estimate.reason


def test_dose_change_restarts_the_steady_state_clock() -> None:
    doses = [DoseEvent(DAY50_DOSE - timedelta(days=10 - i), 400 if i < 8 else 600) for i in range(10)]
    level = Level(doses[-1].time + timedelta(hours=12), 1200)
    history = build_history(Regimen(600, 24, since=doses[0].time), doses, [level])
    estimate = loglinear_estimate(history, level, 24)
    assert estimate is not None and "not at steady state (36 h" in estimate.reason
