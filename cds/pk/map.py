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
    sd = [math.sqrt(row[i]) for i, row in enumerate(problem.model.omega)]
    bound = [BOUND_SD * s for s in sd]
    best = _minimise(problem, [0.0] * problem.n_eta, bound)
    evaluations = best[3]
    for _ in range(MAX_WIDENINGS):
        if not _on_bound(best[0], bound):
            break
        bound = [b + 1.0 for b in bound]
        best = _better(best, _minimise(problem, best[0], bound))
        evaluations += best[3]
    best, extra = _restart_if_needed(problem, best, sd, bound)
    eta, value, (success, message), _ = best
    if _on_bound(eta, bound):
        shown = np.array(bound).round(2).tolist()
        success, message = False, f"{message}; estimate on a bound of +-{shown} after widening"
    return _result(problem, eta, value, success, message, evaluations + extra)


# Plain floats, not numpy, in this bookkeeping: numpy's per-call overhead on 2-element arrays was a
# third of a fit. Square roots, sums and comparisons are exact in both, so the fit is the same.
Attempt = tuple[list[float], float, tuple[bool, str], int]
PROBE_MARGIN = 1e-8  # relative; far above the rounding gap between the scalar and the vectorised OFV


def _minimise(problem: MapProblem, start: list[float], bound: list[float]) -> Attempt:
    result = minimise_in_box(problem.ofv_and_gradient, start, [-b for b in bound], bound)
    ok = result.success and all(math.isfinite(v) for v in result.x) and math.isfinite(result.value)
    return list(result.x), result.value, (ok, result.message), result.n_evaluations


def _restart_if_needed(problem: MapProblem, best: Attempt, sd: list[float], bound: list[float]) -> tuple[Attempt, int]:
    if best[2][0] and not _on_bound(best[0], bound) and _clearly_no_lower_start(problem, best[1], sd):
        return best, 0
    spread = np.diag(sd)
    starts = np.concatenate([spread, -spread]) * 1.5
    probe = problem.ofv(starts)
    if best[2][0] and not _on_bound(best[0], bound) and np.all(probe >= best[1]):
        return best, 0
    evaluations = 0
    for i in np.argsort(probe):
        attempt = _minimise(problem, starts[i].tolist(), bound)
        evaluations += attempt[3]
        best = _better(best, attempt)
    return best, evaluations


def _clearly_no_lower_start(problem: MapProblem, value: float, sd: list[float]) -> bool:
    """True when every spread start is above ``value`` by a margin, by the scalar OFV.

    The vectorised probe in ``_restart_if_needed`` then comes to the same answer, so its cost (numpy on
    four points) is paid only in the doubtful and the restarting cases, which keep its exact order.
    """
    limit = value + PROBE_MARGIN * (1.0 + abs(value))
    n = len(sd)
    try:
        for sign in (1.5, -1.5):
            for i in range(n):
                start = [sign * sd[i] if j == i else 0.0 for j in range(n)]
                if not problem.ofv_and_gradient(start)[0] >= limit:
                    return False
    except (ArithmeticError, ValueError):
        return False
    return True


def _better(a: Attempt, b: Attempt) -> Attempt:
    if a[2][0] != b[2][0]:
        return a if a[2][0] else b
    return a if a[1] <= b[1] else b


def _on_bound(eta: list[float], bound: list[float]) -> bool:
    return any(abs(e) >= b - 1e-6 for e, b in zip(eta, bound, strict=True))


def _result(problem: MapProblem, eta: list[float], value: float, ok: bool, message: str, n: int) -> MapFit:
    hessian = [[0.5 * x for x in row] for row in finite_difference_hessian(problem.ofv_and_gradient, eta)]
    covariance, hessian_ok = _invert(hessian, problem.model.omega)
    cl, v, ka = problem.parameters(np.array(eta))
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
        covariance=covariance,
    )


def laplace_hessian(problem: MapProblem, eta: np.ndarray) -> np.ndarray:
    """Hessian of -log posterior (= OFV / 2) at ``eta`` by central differences of the analytic gradient."""
    return 0.5 * np.array(finite_difference_hessian(problem.ofv_and_gradient, eta.tolist()))


def _invert(
    hessian: list[list[float]], prior: tuple[tuple[float, ...], ...]
) -> tuple[tuple[tuple[float, ...], ...], bool]:
    """Inverse Hessian; the prior covariance stands in when the Hessian is not positive definite."""
    low = cholesky(hessian)
    if low is None:
        return tuple(tuple(float(x) for x in row) for row in prior), False
    n = len(hessian)
    columns = [solve_cholesky(low, [1.0 if j == i else 0.0 for j in range(n)]) for i in range(n)]
    return tuple(tuple(columns[j][i] for j in range(n)) for i in range(n)), True
