"""Parameter uncertainty of the individual etas and what it implies for the steady-state trough.

* Laplace: eta ~ N(eta_MAP, H^-1), H the Hessian of -log posterior at the MAP (pk.md 4.1).
* SIR (option): multivariate-t proposals around the MAP, importance weights exp(-OFV/2) / proposal
  density, resampled with replacement (the idea of Tucuxi's a-posteriori percentiles).
* Prior: eta ~ N(0, Omega) when there is no level (a-priori prediction).

Every draw is seeded through an explicit ``np.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cds.pk.map import MapFit
from cds.pk.model import PkModel, TypicalValues, apply_etas
from cds.pk.objective import MapProblem
from cds.pk.predict import steady_state_conc

SIR_DF = 4.0
SIR_PROPOSALS_PER_DRAW = 10
SIR_MAX_ABS_Z = 6.0  # proposals beyond 6 prior SD get no weight (overflow guard)


@dataclass(frozen=True)
class Percentiles:
    """5th, 50th and 95th percentiles (ng/mL)."""

    p05: float
    p50: float
    p95: float


def create_rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A generator from a seed (or the generator itself), so every random result can be pinned.

    Examples
    --------
    >>> int(create_rng(7).integers(0, 100)) == int(create_rng(7).integers(0, 100))
    True
    """
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def normal_draws(rng: np.random.Generator, mean: np.ndarray, covariance: np.ndarray, n: int) -> np.ndarray:
    """``n`` multivariate normal draws via the Cholesky factor, element-wise (see ``apply_etas``)."""
    factor = np.linalg.cholesky(covariance)
    z = rng.standard_normal((n, mean.size))
    draws = np.empty((n, mean.size))
    for i in range(mean.size):
        # mean + sum over j of z_j * factor[i, j], in that order; the factor is zero for j > i
        column = mean[i] + z[:, 0] * factor[i, 0]
        for j in range(1, i + 1):
            column += z[:, j] * factor[i, j]
        draws[:, i] = column
    return draws


def draw_prior(model: PkModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` etas from the population distribution N(0, Omega), shape (n, n_eta)."""
    omega = model.omega_matrix()
    return normal_draws(rng, np.zeros(len(omega)), omega, n)


def draw_laplace(fit: MapFit, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` etas from the Laplace approximation N(eta_MAP, H^-1) of the posterior."""
    return normal_draws(rng, np.array(fit.eta), np.array(fit.covariance), n)


def draw_sir(problem: MapProblem, fit: MapFit, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` etas by sampling-importance-resampling from multivariate-t proposals around the MAP."""
    centre, scale = np.array(fit.eta), np.array(fit.covariance)
    n_prop = SIR_PROPOSALS_PER_DRAW * n
    z = normal_draws(rng, np.zeros(centre.size), scale, n_prop)
    stretch = np.sqrt(rng.chisquare(SIR_DF, size=(n_prop, 1)) / SIR_DF)
    proposals = centre + z / stretch
    offsets = proposals - centre
    mahalanobis = np.einsum("ni,ij,nj->n", offsets, np.linalg.inv(scale), offsets)
    log_proposal = -0.5 * (SIR_DF + centre.size) * np.log1p(mahalanobis / SIR_DF)
    log_weight = -0.5 * problem.ofv(proposals) - log_proposal
    sd = np.sqrt(np.diag(problem.model.omega_matrix()))
    log_weight[np.any(np.abs(proposals) > SIR_MAX_ABS_Z * sd, axis=1)] = -np.inf
    weight = np.exp(log_weight - log_weight.max())
    picked = rng.choice(n_prop, size=n, replace=True, p=weight / weight.sum())
    return proposals[picked]


def individual_parameters(model: PkModel, typical: TypicalValues, etas: np.ndarray) -> np.ndarray:
    """(CL, V, ka) per eta row, shape (n, 3)."""
    return apply_etas(model, typical.log_values(), etas)


def unit_troughs(parameters: np.ndarray, interval_h: float, bioavailability: float = 1.0) -> np.ndarray:
    """Steady-state trough per mg of each dose (ng/mL per mg) for parameter rows (CL, V, ka)."""
    cl, v, ka = parameters[:, 0], parameters[:, 1], parameters[:, 2]
    return steady_state_conc(bioavailability, interval_h, cl, v, ka, interval_h)


def percentiles(values: np.ndarray) -> Percentiles:
    """5/50/95 percentiles of ``values``.

    Examples
    --------
    >>> percentiles(np.arange(101.0))
    Percentiles(p05=5.0, p50=50.0, p95=95.0)
    """
    return sorted_percentiles(np.sort(values))


def sorted_percentiles(sorted_values: np.ndarray) -> Percentiles:
    """5/50/95 percentiles of already sorted values (linear interpolation, as numpy's default)."""
    last = sorted_values.size - 1

    def at(q: float) -> float:
        position = q * last
        low = int(position)
        high = min(low + 1, last)
        return float(sorted_values[low] + (position - low) * (sorted_values[high] - sorted_values[low]))

    return Percentiles(at(0.05), at(0.5), at(0.95))


def measured_level_draws(
    troughs: np.ndarray, model: PkModel, rng: np.random.Generator, *, last_use: bool = False
) -> np.ndarray:
    """Troughs with residual error added: what a future measured trough level could read (>= 0).

    ``last_use``: nothing draws from ``rng`` afterwards. Without an additive error the second row of
    noise only adds zeros, and the first row is the first ``n`` draws of the stream, so it alone is drawn.
    """
    if last_use and model.sigma_add_ng_ml == 0.0:
        noise = rng.standard_normal(troughs.size)
        return np.asarray(np.maximum(troughs * (1.0 + model.sigma_prop * noise), 0.0))
    noise = rng.standard_normal((2, troughs.size))
    measured = troughs * (1.0 + model.sigma_prop * noise[0]) + model.sigma_add_ng_ml * noise[1]
    return np.asarray(np.maximum(measured, 0.0))
