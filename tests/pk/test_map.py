"""MAP fits against the Tucuxi cross-check (pk.md 6.2) and our reference vectors (pk.md 4.1)."""

from __future__ import annotations

import numpy as np
import pytest

from cds.pk.examples import example_covariates, example_history, example_levels
from cds.pk.inputs import Covariates
from cds.pk.map import fit_map, laplace_hessian
from cds.pk.model import load_model, typical_values
from cds.pk.objective import MapProblem
from cds.pk.predict import steady_state_conc

WIDMER = load_model("imatinib-widmer2006")
TYPICAL = typical_values(WIDMER, example_covariates().values())
# 4 significant digits: a relative difference below 2e-4 (Tucuxi stops its conjugate gradient slightly before
# the optimum; see test_our_optimum_is_at_least_as_good_as_tucuxis).
FOUR_DIGITS = 2e-4


def _fit(*samples: tuple[float, float]):  # type: ignore[no-untyped-def]
    problem = MapProblem(WIDMER, TYPICAL, example_history(), example_levels(*samples))
    fit = fit_map(problem)
    cmin = float(steady_state_conc(400, 24, fit.cl_l_h, fit.v_l, fit.ka_per_h, 24.0))
    return problem, fit, cmin


TUCUXI = [
    pytest.param(((3, 1500),), (16.319, 382.14, 629.98), id="3h-1500"),
    pytest.param(((23.98, 1500),), (10.199, 269.48, 1069.28), id="23.98h-1500"),
    pytest.param(((3, 1500), (23.98, 800)), (15.549, 388.94, 683.49), id="3h-1500+23.98h-800"),
]


@pytest.mark.parametrize(("samples", "expected"), TUCUXI)
def test_tucuxi_map_estimates_reproduced(samples: tuple[tuple[float, float], ...], expected: tuple[float, ...]) -> None:
    """pk.md 6.2: tucucli on ch.tucuxi.imatinib.gotta2012.tdd, male CML 70 kg 50 y, 400 mg q24h, day 50."""
    _, fit, cmin = _fit(*samples)
    assert fit.converged, fit.message
    assert (fit.cl_l_h, fit.v_l, cmin) == pytest.approx(expected, rel=FOUR_DIGITS)


@pytest.mark.parametrize(("samples", "expected"), TUCUXI[1:])
def test_our_optimum_is_at_least_as_good_as_tucuxis(
    samples: tuple[tuple[float, float], ...], expected: tuple[float, ...]
) -> None:
    problem, fit, _ = _fit(*samples)
    tucuxi_eta = np.log([expected[0] / TYPICAL.cl_l_h, expected[1] / TYPICAL.v_l])
    assert fit.objective <= float(problem.ofv(tucuxi_eta))


def test_a_priori_prediction_matches_tucuxi() -> None:
    """pk.md 6.2 first row: no sample, CL 16.596, V 393.2, Cmin 623.24 (Tucuxi) / 623.25 (ours)."""
    assert float(steady_state_conc(400, 24, TYPICAL.cl_l_h, TYPICAL.v_l, TYPICAL.ka_per_h, 24)) == pytest.approx(
        623.24, rel=FOUR_DIGITS
    )


@pytest.mark.parametrize(
    ("samples", "eta", "cl_v", "cmin"),
    [
        pytest.param(((3, 1500),), (-0.0168, -0.0285), (16.32, 382.1), 630, id="3h"),
        pytest.param(((24, 1500),), (-0.487, -0.378), (10.20, 269.6), 1070, id="24h"),
        pytest.param(((3, 1500), (24, 800)), (-0.065, -0.011), (15.55, 389.0), 684, id="3h+24h"),
    ],
)
def test_pk_md_reference_vectors(
    samples: tuple[tuple[float, float], ...], eta: tuple[float, float], cl_v: tuple[float, float], cmin: float
) -> None:
    """pk.md 4.1 table, given there to 3-4 significant digits; compared at that precision."""
    _, fit, got_cmin = _fit(*samples)
    np.testing.assert_allclose(fit.eta, eta, atol=6e-4)
    assert (fit.cl_l_h, fit.v_l) == pytest.approx(cl_v, rel=5e-4)
    assert got_cmin == pytest.approx(cmin, abs=0.5)


def test_laplace_covariance_is_inverse_half_hessian_and_positive_definite() -> None:
    problem, fit, _ = _fit((3, 1500))
    covariance = np.array(fit.covariance)
    assert fit.hessian_ok
    np.testing.assert_allclose(covariance @ laplace_hessian(problem, np.array(fit.eta)), np.eye(2), atol=1e-8)
    prior = WIDMER.omega_matrix()
    assert np.all(np.diag(covariance) < np.diag(prior))  # a level shrinks the uncertainty


def test_extreme_level_is_fitted_without_sticking_to_a_bound() -> None:
    """A trough of 20000 ng/mL pushes eta_CL far out; bounds widen instead of clipping the answer."""
    _, fit, cmin = _fit((24, 20000))
    assert fit.converged, fit.message
    assert all(np.isfinite(fit.eta))
    assert cmin > 4000


def test_petain_model_fits_eta_on_ka() -> None:
    petain = load_model("imatinib-petain2008")
    covariates = Covariates(sex="female", age_y=60, weight_kg=54, indication="GIST", agp_g_l=1.13, albumin_g_l=38)
    typical = typical_values(petain, covariates.values())
    problem = MapProblem(petain, typical, example_history(), example_levels((2, 2500), (23, 1200)))
    fit = fit_map(problem)
    assert fit.converged, fit.message
    assert fit.eta_names == ("CL", "KA")
    assert fit.v_l == pytest.approx(202.0)  # no IIV on V
    gradient = problem.ofv_and_gradient(np.array(fit.eta))[1]
    assert np.all(np.abs(gradient) < 1e-3)
