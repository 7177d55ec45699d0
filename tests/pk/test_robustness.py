"""Property test: any valid patient gives a finite, self-consistent estimate (never NaN, never a crash)."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.pk import Covariates, DoseEvent, Level, Regimen, estimate_exposure, pk_facts

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def _floats(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [x for f in dataclasses.fields(value) for x in _floats(getattr(value, f.name))]
    if isinstance(value, tuple | list):
        return [x for item in value for x in _floats(item)]
    return [value] if isinstance(value, float) else []


@st.composite
def patients(draw: st.DrawFn) -> tuple[Covariates, Regimen, list[DoseEvent], list[Level]]:
    covariates = Covariates(
        sex=draw(st.sampled_from(["male", "female", "unknown"])),
        age_y=draw(st.floats(18, 95)),
        weight_kg=draw(st.floats(35, 150)),
        indication=draw(st.sampled_from(["CML", "GIST"])),
    )
    interval = draw(st.sampled_from([12.0, 24.0]))
    dose = draw(st.sampled_from([100.0, 200.0, 300.0, 400.0]))
    n_doses = draw(st.integers(1, 30))
    missed = draw(st.sets(st.integers(1, max(1, n_doses - 1)), max_size=3))
    doses = [DoseEvent(T0 + timedelta(hours=i * interval), dose) for i in range(n_doses) if i not in missed]
    last = doses[-1].time
    offsets = draw(st.lists(st.floats(0.05, 3 * interval), min_size=0, max_size=3))
    levels = [Level(last - timedelta(hours=interval) + timedelta(hours=h), draw(st.floats(5, 30000))) for h in offsets]
    levels = [lv for lv in levels if lv.time > doses[0].time]
    since = None if draw(st.booleans()) else T0
    return covariates, Regimen(dose, interval, since), doses, levels


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patient=patients(), threshold=st.floats(0.05, 1.0), cap=st.sampled_from([None, 300.0, 800.0]))
def test_estimates_are_finite_and_consistent(
    patient: tuple[Covariates, Regimen, list[DoseEvent], list[Level]], threshold: float, cap: float | None
) -> None:
    covariates, regimen, doses, levels = patient
    estimate = estimate_exposure(
        "imatinib-widmer2006", covariates, regimen, doses, levels,
        target_ng_ml=1000, proposal_threshold=threshold, caps_max_daily_mg=cap, n_draws=500,
    )  # fmt: skip
    assert all(math.isfinite(x) for x in _floats(estimate))
    assert estimate.method in ("map", "loglinear", "measured-trough", "apriori")
    assert (estimate.map_fit is None) == (not levels)
    assert estimate.method != "map" or (estimate.map_fit is not None and estimate.map_fit.converged)
    if estimate.trough_interval is not None:
        band = estimate.trough_interval
        assert 0 < band.p05 <= band.p50 <= band.p95
    if estimate.proposed_daily_mg is not None:
        assert cap is None or estimate.proposed_daily_mg <= cap
        row = next(r for r in estimate.dose_table if r.daily_mg == estimate.proposed_daily_mg)
        assert row.p_target >= threshold
    facts = pk_facts(estimate)
    assert None not in facts.values()
    assert all(not isinstance(v, float) or math.isfinite(v) for v in facts.values())
