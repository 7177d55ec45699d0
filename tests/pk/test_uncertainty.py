"""Shortcuts in the interval draws give the figures of the full computation."""

from __future__ import annotations

import numpy as np
import pytest

from cds.pk.model import load_model
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
