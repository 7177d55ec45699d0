"""The bounded quasi-Newton minimiser on problems with known answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from cds.pk.optimise import cholesky, minimise_in_box, solve_cholesky


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
