"""MAP estimation of the individual etas (pk.md 4.1): a bounded quasi-Newton minimiser
(``optimise.minimise_in_box``) on the analytic objective and gradient.

Start at eta = 0 within +-4 SD; bounds widen by 1 when the estimate sits on one (as posologyr does);
restart from a few spread points only when the first fit failed, sits on a bound, or a cheap vectorised
probe of those points finds a lower objective (a second mode). Non-convergence is reported in the
result, never raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cds.pk.objective import MapProblem
from cds.pk.optimise import cholesky, finite_difference_hessian, minimise_in_box, solve_cholesky

BOUND_SD = 4.0
MAX_WIDENINGS = 2


@dataclass(frozen=True)
class MapFit:
    """Result of a MAP fit; ``covariance`` is the Laplace covariance of eta (inverse Hessian of OFV/2)."""

    eta: tuple[float, ...]
    eta_names: tuple[str, ...]
    cl_l_h: float
    v_l: float
    ka_per_h: float
    objective: float
    converged: bool
    message: str
    n_evaluations: int
    hessian_ok: bool
    covariance: tuple[tuple[float, ...], ...]


def fit_map(problem: MapProblem) -> MapFit:
    """Minimise the OFV of ``problem``.

    Parameters
    ----------
    problem : MapProblem
        Observations, dose history and prior of one patient.

    Returns
    -------
    MapFit
        eta, individual CL/V/ka, objective, convergence flag and message, Laplace covariance.

    Examples
    --------
    >>> from cds.pk.examples import example_covariates, example_history, example_levels
    >>> from cds.pk.model import load_model, typical_values
    >>> model = load_model("imatinib-widmer2006")
    >>> typical = typical_values(model, example_covariates().values())
    >>> fit = fit_map(MapProblem(model, typical, example_history(), example_levels((3, 1500))))
    >>> fit.converged, round(fit.cl_l_h, 3), round(fit.v_l, 1)  # Tucuxi: 16.319 / 382.14
    (True, 16.319, 382.1)
    """
    sd = np.sqrt(np.diag(problem.model.omega_matrix()))
    bound = BOUND_SD * sd
    best = _minimise(problem, np.zeros(problem.n_eta), bound)
    evaluations = best[3]
    for _ in range(MAX_WIDENINGS):
        if not _on_bound(best[0], bound):
            break
        bound = bound + 1.0
        best = _better(best, _minimise(problem, best[0], bound))
        evaluations += best[3]
    best, extra = _restart_if_needed(problem, best, sd, bound)
    eta, value, (success, message), _ = best
    if _on_bound(eta, bound):
        success, message = False, f"{message}; estimate on a bound of +-{bound.round(2).tolist()} after widening"
    return _result(problem, eta, value, success, message, evaluations + extra)


Attempt = tuple[np.ndarray, float, tuple[bool, str], int]


def _minimise(problem: MapProblem, start: np.ndarray, bound: np.ndarray) -> Attempt:
    result = minimise_in_box(problem.ofv_and_gradient, start.tolist(), (-bound).tolist(), bound.tolist())
    ok = result.success and all(math.isfinite(v) for v in result.x) and math.isfinite(result.value)
    return np.array(result.x), result.value, (ok, result.message), result.n_evaluations


def _restart_if_needed(problem: MapProblem, best: Attempt, sd: np.ndarray, bound: np.ndarray) -> tuple[Attempt, int]:
    starts = np.concatenate([np.diag(sd), -np.diag(sd)]) * 1.5
    probe = problem.ofv(starts)
    if best[2][0] and not _on_bound(best[0], bound) and np.all(probe >= best[1]):
        return best, 0
    evaluations = 0
    for i in np.argsort(probe):
        attempt = _minimise(problem, starts[i], bound)
        evaluations += attempt[3]
        best = _better(best, attempt)
    return best, evaluations


def _better(a: Attempt, b: Attempt) -> Attempt:
    if a[2][0] != b[2][0]:
        return a if a[2][0] else b
    return a if a[1] <= b[1] else b


def _on_bound(eta: np.ndarray, bound: np.ndarray) -> bool:
    return bool(np.any(np.abs(eta) >= bound - 1e-6))


def _result(problem: MapProblem, eta: np.ndarray, value: float, ok: bool, message: str, n: int) -> MapFit:
    hessian = laplace_hessian(problem, eta)
    covariance, hessian_ok = _invert(hessian, problem.model.omega_matrix())
    cl, v, ka = problem.parameters(eta)
    return MapFit(
        eta=tuple(float(x) for x in eta),
        eta_names=problem.model.eta_parameters,
        cl_l_h=float(cl),
        v_l=float(v),
        ka_per_h=float(ka),
        objective=value,
        converged=ok and hessian_ok,
        message=message if hessian_ok else f"{message}; Hessian not positive definite",
        n_evaluations=n,
        hessian_ok=hessian_ok,
        covariance=tuple(tuple(float(x) for x in row) for row in covariance),
    )


def laplace_hessian(problem: MapProblem, eta: np.ndarray) -> np.ndarray:
    """Hessian of -log posterior (= OFV / 2) at ``eta`` by central differences of the analytic gradient."""
    return 0.5 * np.array(finite_difference_hessian(problem.ofv_and_gradient, eta.tolist()))


def _invert(hessian: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, bool]:
    """Inverse Hessian; the prior covariance stands in when the Hessian is not positive definite."""
    low = cholesky(hessian.tolist())
    if low is None:
        return prior, False
    columns = [solve_cholesky(low, unit) for unit in np.eye(len(hessian)).tolist()]
    return np.array(columns).T, True
