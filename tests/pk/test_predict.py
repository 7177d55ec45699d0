"""Event-driven prediction against the closed forms of pk.md 4.2-4.3 (the test oracle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cds.pk.inputs import DoseEvent, Regimen, build_history
from cds.pk.predict import simulate, single_dose_conc, steady_state_conc

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MALE_CML = (16.596, 393.2, 0.609)

cl_st = st.floats(2.0, 60.0)
v_st = st.floats(50.0, 2000.0)
ka_st = st.floats(0.1, 3.0)
interval_st = st.sampled_from([12.0, 24.0])


def _away_from_equal_rates(cl: float, v: float, ka: float) -> None:
    """k == ka is handled by a 1e-6 relative nudge (tested separately below), not to 1e-9.

    Comparisons also allow 1e-9 ng/mL absolute: far below any assay, where cancellation dominates."""
    assume(abs(ka - cl / v) > 1e-4 * ka)


def _history(doses: list[tuple[float, float]], *, steady: Regimen | None = None):  # type: ignore[no-untyped-def]
    events = [DoseEvent(T0 + timedelta(hours=h), mg) for h, mg in doses]
    regimen = steady or Regimen(400, 24, since=T0)
    return build_history(regimen, events, [])


def test_forty_superposed_doses_reproduce_the_steady_state_trough() -> None:
    """pk.md 4.3: 40 q24h doses of 400 mg give Cmin,ss = 623.2468 ng/mL (male CML, 70 kg, 50 y)."""
    history = _history([(24.0 * i, 400) for i in range(40)])
    conc = simulate(history, *MALE_CML, np.array([24.0 * 40]))
    assert conc[0, 0] == pytest.approx(623.2468, rel=1e-6)
    assert float(steady_state_conc(400, 24, *MALE_CML, 24.0)) == pytest.approx(623.2468, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(cl=cl_st, v=v_st, ka=ka_st, t=st.floats(0.0, 100.0), dose=st.floats(10, 1000))
def test_one_dose_matches_the_single_dose_closed_form(cl: float, v: float, ka: float, t: float, dose: float) -> None:
    _away_from_equal_rates(cl, v, ka)
    history = _history([(0.0, dose)])
    got = simulate(history, cl, v, ka, np.array([t]))[0, 0]
    assert got == pytest.approx(float(single_dose_conc(dose, cl, v, ka, t)), rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(cl=cl_st, v=v_st, ka=ka_st, tau=interval_st, frac=st.floats(0.0, 1.0), dose=st.floats(50, 800))
def test_steady_state_before_history_equals_closed_form(
    cl: float, v: float, ka: float, tau: float, frac: float, dose: float
) -> None:
    """Doses at 0, tau, 2 tau with the geometric series before: exactly at steady state."""
    _away_from_equal_rates(cl, v, ka)
    history = _history([(i * tau, dose) for i in range(3)], steady=Regimen(dose, tau))
    t = 2 * tau + frac * tau
    got = simulate(history, cl, v, ka, np.array([t]))[0, 0]
    assert got == pytest.approx(float(steady_state_conc(dose, tau, cl, v, ka, frac * tau)), rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(cl=cl_st, v=v_st, ka=ka_st, tau=interval_st, frac=st.floats(0.01, 1.0))
def test_long_regular_history_converges_to_closed_form(cl: float, v: float, ka: float, tau: float, frac: float) -> None:
    """Superposing enough doses (here until the omitted tail is < 1e-9) reaches the steady state."""
    _away_from_equal_rates(cl, v, ka)
    k = cl / v
    n = int(np.ceil(max(25.0 / (k * tau), 25.0 / (ka * tau)))) + 2
    history = _history([(i * tau, 300.0) for i in range(n)])
    t = (n - 1) * tau + frac * tau
    got = simulate(history, cl, v, ka, np.array([t]))[0, 0]
    assert got == pytest.approx(float(steady_state_conc(300.0, tau, cl, v, ka, frac * tau)), rel=1e-8, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    cl=cl_st,
    v=v_st,
    ka=ka_st,
    doses=st.lists(st.tuples(st.floats(0.0, 200.0), st.floats(50.0, 800.0)), min_size=1, max_size=12),
    t=st.floats(0.0, 250.0),
)
def test_irregular_history_is_the_sum_of_single_doses(
    cl: float, v: float, ka: float, doses: list[tuple[float, float]], t: float
) -> None:
    """Linear kinetics: missed, changed and irregular doses superpose (pk.md 4.3).

    The oracle sums single doses at the history's own dose times: datetimes round them to 1 us, which on a
    steep absorption limb just after a dose moves the concentration by more than the tolerance."""
    _away_from_equal_rates(cl, v, ka)
    shift = min(h for h, _ in doses)
    history = _history(doses)
    at = t - shift
    got = simulate(history, cl, v, ka, np.array([at]))[0, 0] if t >= shift else 0.0
    given = zip(history.times_h, history.mg, strict=True)
    expected = sum(float(single_dose_conc(mg, cl, v, ka, at - h)) for h, mg in given if h < at) if t >= shift else 0.0
    assert got == pytest.approx(expected, rel=1e-8, abs=1e-9)


def test_missed_dose_lowers_the_next_trough_by_one_dose_contribution() -> None:
    full = _history([(24.0 * i, 400) for i in range(10)])
    missed = _history([(24.0 * i, 400) for i in range(10) if i != 8])
    t = np.array([24.0 * 10])
    drop = simulate(full, *MALE_CML, t)[0, 0] - simulate(missed, *MALE_CML, t)[0, 0]
    assert drop == pytest.approx(float(single_dose_conc(400, *MALE_CML, 48.0)), rel=1e-9)
    assert drop > 0


def test_sample_at_a_dose_time_is_the_pre_dose_trough() -> None:
    history = _history([(24.0 * i, 400) for i in range(40)])
    before = simulate(history, *MALE_CML, np.array([24.0 * 39]))[0, 0]
    just_before = simulate(history, *MALE_CML, np.array([24.0 * 39 - 1e-6]))[0, 0]
    assert before == pytest.approx(just_before, rel=1e-6)


def test_parameters_broadcast_over_draws() -> None:
    history = _history([(24.0 * i, 400) for i in range(5)])
    cl = np.array([10.0, 16.596, 25.0])
    conc = simulate(history, cl, 393.2, 0.609, np.array([50.0, 100.0]))
    assert conc.shape == (3, 2)
    single = simulate(history, 16.596, 393.2, 0.609, np.array([50.0, 100.0]))
    np.testing.assert_allclose(conc[1], single[0], rtol=1e-12)
    assert np.all(np.diff(conc[:, 1]) < 0)  # higher clearance, lower concentration


def test_equal_rate_constants_stay_finite_and_continuous() -> None:
    """ka == k is the 0/0 point of the Bateman form; the nudge keeps the value within 1e-5 of neighbours."""
    v, ka = 100.0, 0.5
    at = float(single_dose_conc(100, ka * v, v, ka, 4.0))
    near = float(single_dose_conc(100, ka * v * (1 + 1e-4), v, ka, 4.0))
    expected = 1000 * 100 * ka * 4.0 * np.exp(-ka * 4.0) / v  # limit F D ka t e^{-kt} / V (pk.md 4.2)
    assert np.isfinite(at)
    assert at == pytest.approx(expected, rel=1e-5)
    assert near == pytest.approx(expected, rel=1e-3)


def test_steady_state_at_equal_rates_agrees_within_the_nudge() -> None:
    """k == ka exactly (CL/V = ka = 1/h): engine and closed form agree to 1e-5 despite the 0/0 form."""
    history = _history([(i * 12.0, 50.0) for i in range(3)], steady=Regimen(50.0, 12.0))
    got = simulate(history, 50.0, 50.0, 1.0, np.array([24.0, 30.0]))[0]
    expected = steady_state_conc(50.0, 12.0, 50.0, 50.0, 1.0, np.array([0.0, 6.0]))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(np.isfinite(got))
