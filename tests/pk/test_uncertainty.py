"""Shortcuts in the interval draws and the dose history give the figures of the full computation."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.pk.estimate import _trough
from cds.pk.inputs import DoseHistory, Regimen
from cds.pk.model import load_model
from cds.pk.predict import steady_state_conc
from cds.pk.uncertainty import create_rng, measured_level_draws

WIDMER = load_model("imatinib-widmer2006")


@pytest.mark.parametrize("seed", [0, 1, 20240601])
def test_measured_levels_drawn_last_equal_the_full_draw(seed: int) -> None:
    """Without an additive error, the last draw of a private generator needs only the first noise row."""
    troughs = np.sort(create_rng(seed + 1).lognormal(6.5, 0.4, 4000))
    full = measured_level_draws(troughs, WIDMER, create_rng(seed))
    short = measured_level_draws(troughs, WIDMER, create_rng(seed), last_use=True)
    assert WIDMER.sigma_add_ng_ml == 0.0
    assert np.array_equal(full, short)


@given(
    st.lists(st.tuples(st.floats(1.0, 40.0), st.sampled_from([200.0, 400.0])), min_size=1, max_size=40),
    st.floats(0.0, 900.0),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_short_and_vectorised_hours_on_regimen_agree(steps, t_h, steady) -> None:  # type: ignore[no-untyped-def]
    """A short history walks back in Python floats, a long one uses numpy: the same hours."""
    history = DoseHistory(
        origin=datetime(2026, 1, 1, tzinfo=UTC),
        times_h=np.cumsum([gap for gap, _ in steps]),
        mg=np.array([mg for _, mg in steps]),
        ss_dose_mg=400.0 if steady else None,
        regimen_dose_mg=400.0,
    )
    short = history.hours_on_regimen(t_h, 24.0)
    with patch("cds.pk.inputs._SHORT_HISTORY", -1):
        assert history.hours_on_regimen(t_h, 24.0) == short


@given(st.floats(2.0, 60.0), st.floats(50.0, 2000.0), st.floats(0.05, 3.0), st.sampled_from([12.0, 24.0]))
@settings(max_examples=300, deadline=None)
def test_scalar_trough_equals_steady_state_conc(cl, v, ka, tau) -> None:  # type: ignore[no-untyped-def]
    expected = float(steady_state_conc(400.0, tau, cl, v, ka, tau))
    assert _trough(Regimen(400.0, tau), cl, v, ka, 1.0) == expected
    assert _trough(Regimen(400.0, tau), ka * v, v, ka, 1.0) == float(steady_state_conc(400.0, tau, ka * v, v, ka, tau))
