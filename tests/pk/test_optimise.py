"""The bounded quasi-Newton minimiser on problems with known answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.pk.optimise import (
    _bfgs_update_2,
    _bfgs_update_n,
    _cholesky_2,
    _cholesky_n,
    _solve_cholesky_2,
    _solve_cholesky_n,
    cholesky,
    minimise_in_box,
    solve_cholesky,
)


def rosenbrock(x: Sequence[float]) -> tuple[float, list[float]]:
    a, b = x
    value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    return value, [-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)]


def test_unconstrained_minimum_of_rosenbrock() -> None:
    result = minimise_in_box(rosenbrock, [-1.2, 1.0], [-5.0, -5.0], [5.0, 5.0])
    assert result.success, result.message
    assert result.x == pytest.approx((1.0, 1.0), abs=1e-6)


def test_minimum_on_a_bound_holds_that_coordinate() -> None:
    """Minimum of the Rosenbrock function with a <= 0.5: on the bound a = 0.5, b = 0.25."""
    result = minimise_in_box(rosenbrock, [0.0, 0.0], [-5.0, -5.0], [0.5, 5.0])
    assert result.success, result.message
    assert result.x == pytest.approx((0.5, 0.25), abs=1e-6)


def test_saddle_start_with_indefinite_hessian_still_descends() -> None:
    """f = x^4 - 2x^2 + y^2 starts at the saddle-like point x = 0.01 (negative curvature)."""

    def f(x: Sequence[float]) -> tuple[float, list[float]]:
        return x[0] ** 4 - 2 * x[0] ** 2 + x[1] ** 2, [4 * x[0] ** 3 - 4 * x[0], 2 * x[1]]

    result = minimise_in_box(f, [0.01, 0.5], [-3.0, -3.0], [3.0, 3.0])
    assert result.success
    assert result.x == pytest.approx((1.0, 0.0), abs=1e-6)
    assert result.value == pytest.approx(-1.0)


def test_non_finite_objective_reports_failure_instead_of_raising() -> None:
    def broken(x: Sequence[float]) -> tuple[float, list[float]]:
        return math.nan, [math.nan, math.nan]

    result = minimise_in_box(broken, [0.0, 0.0], [-1.0, -1.0], [1.0, 1.0])
    assert not result.success


def test_cholesky_solves_and_detects_indefinite_matrices() -> None:
    low = cholesky([[4.0, 2.0], [2.0, 3.0]])
    assert low is not None
    assert solve_cholesky(low, [2.0, 1.0]) == pytest.approx([0.5, 0.0])
    assert cholesky([[1.0, 2.0], [2.0, 1.0]]) is None


@given(st.floats(-2.0, 50.0), st.floats(-20.0, 20.0), st.floats(-2.0, 50.0), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3))
@settings(max_examples=500, deadline=None)
def test_two_by_two_factor_and_solve_equal_the_general_loops(a, b, c, r0, r1) -> None:  # type: ignore[no-untyped-def]
    matrix = [[a, b], [b, c]]
    low = _cholesky_2(matrix)
    assert repr(low) == repr(_cholesky_n(matrix))  # repr: the same floats, nan and the sign of zero included
    if low is not None:
        assert repr(_solve_cholesky_2(low, [r0, r1])) == repr(_solve_cholesky_n(low, [r0, r1]))


@given(st.lists(st.floats(-1e3, 1e3), min_size=8, max_size=8))
@settings(max_examples=500, deadline=None)
def test_two_by_two_bfgs_update_equals_the_general_loop(v) -> None:  # type: ignore[no-untyped-def]
    hessian, s, y = [[v[0], v[1]], [v[1], v[2]]], [v[3], v[4]], [v[5], v[6] + v[7]]
    assert repr(_bfgs_update_2(hessian, s, y)) == repr(_bfgs_update_n(hessian, s, y))
