"""One-compartment, first-order absorption predictions (pk.md 4.2-4.3).

``simulate`` propagates the gut and central amounts event by event over the real dose history and is the
prediction engine; ``steady_state_conc`` and ``single_dose_conc`` are the closed forms (the steady-state
trough of a regimen, and the oracle the engine is tested against). Parameters broadcast, so one call
handles thousands of parameter draws. Doses in mg, volumes in L, outputs in ng/mL (mg/L x 1000).
"""

from __future__ import annotations

import numpy as np

from cds.pk.inputs import DoseHistory

MG_L_TO_NG_ML = 1000.0
NEAR_RATES = 1e-7  # relative gap below which k is nudged away from ka (the Bateman form is 0/0 there)

ArrayLike = float | np.ndarray


def separate_rates(k: ArrayLike, ka: ArrayLike) -> np.ndarray:
    """``k`` nudged by a relative 1e-7 where it equals ``ka``; the error this causes is ~1e-7."""
    k_arr = np.asarray(k, dtype=float)
    close = np.abs(ka - k_arr) < NEAR_RATES * np.abs(ka)
    return np.where(close, k_arr * (1.0 - 10 * NEAR_RATES), k_arr)


def single_dose_conc(dose_mg: float, cl: ArrayLike, v: ArrayLike, ka: ArrayLike, t_h: ArrayLike) -> np.ndarray:
    """Concentration ``t_h`` hours after one oral dose (zero before it).

    Examples
    --------
    >>> round(float(single_dose_conc(400, 16.596, 393.2, 0.609, 3.0)), 1)
    787.2
    """
    k = separate_rates(np.asarray(cl) / np.asarray(v), ka)
    t = np.maximum(np.asarray(t_h, dtype=float), 0.0)
    scale = MG_L_TO_NG_ML * dose_mg * np.asarray(ka) / (np.asarray(v) * (ka - k))
    return np.asarray(scale * (np.exp(-k * t) - np.exp(-np.asarray(ka) * t)))


def steady_state_conc(
    dose_mg: float, interval_h: float, cl: ArrayLike, v: ArrayLike, ka: ArrayLike, t_h: ArrayLike
) -> np.ndarray:
    """Steady-state concentration ``t_h`` (0..interval) hours after a dose; ``t_h = interval_h`` is the trough.

    Examples
    --------
    >>> round(float(steady_state_conc(400, 24, 16.596, 393.2, 0.609, 24)), 1)  # pk.md 1.1: 623
    623.2
    """
    k = separate_rates(np.asarray(cl) / np.asarray(v), ka)
    ka_arr = np.asarray(ka, dtype=float)
    scale = MG_L_TO_NG_ML * dose_mg * ka_arr / (np.asarray(v) * (ka_arr - k))
    elim = np.exp(-k * t_h) / -np.expm1(-k * interval_h)
    absorb = np.exp(-ka_arr * t_h) / -np.expm1(-ka_arr * interval_h)
    return np.asarray(scale * (elim - absorb))


def _advance(
    gut: np.ndarray, central: np.ndarray, k: np.ndarray, ka: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    e_k, e_ka = np.exp(-k * dt), np.exp(-ka * dt)
    return gut * e_ka, central * e_k + gut * ka / (ka - k) * (e_k - e_ka)


def _steady_state_amounts(
    dose_mg: float, interval_h: float, k: np.ndarray, ka: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Amounts just before a dose at steady state (the geometric series of all earlier doses)."""
    q_k, q_ka = np.exp(-k * interval_h), np.exp(-ka * interval_h)
    gut = dose_mg * q_ka / (1.0 - q_ka)
    central = dose_mg * ka / (ka - k) * (q_k / (1.0 - q_k) - q_ka / (1.0 - q_ka))
    return gut, central


def simulate(
    history: DoseHistory,
    cl: ArrayLike,
    v: ArrayLike,
    ka: ArrayLike,
    times_h: np.ndarray,
    bioavailability: float = 1.0,
) -> np.ndarray:
    """Concentrations at ``times_h`` (hours since ``history.origin``) by event-driven amounts.

    A dose at the same time as a sample counts after it (the sample is a pre-dose trough).
    Parameters of shape (n,) give a result of shape (n, len(times_h)).

    Examples
    --------
    >>> from cds.pk.examples import example_history
    >>> conc = simulate(example_history(), 16.596, 393.2, 0.609, np.array([24.0 * 49, 24.0 * 49 + 3]))
    >>> np.round(conc, 0).tolist()
    [[623.0, 1336.0]]
    """
    cl_a, v_a, ka_a = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float)) for x in (cl, v, ka)))
    k = separate_rates(cl_a / v_a, ka_a)
    gut, central = np.zeros_like(k), np.zeros_like(k)
    if history.ss_dose_mg is not None:
        gut, central = _steady_state_amounts(bioavailability * history.ss_dose_mg, history.ss_interval_h, k, ka_a)
    now = float(history.times_h[0]) if history.times_h.size else 0.0
    out = np.zeros((k.size, times_h.size))
    events = _merge(history, times_h)
    for time, kind, index in events:
        gut, central = _advance(gut, central, k, ka_a, time - now)
        now = time
        if kind == 0:
            out[:, index] = central / v_a * MG_L_TO_NG_ML
        else:
            gut = gut + bioavailability * history.mg[index]
    return out


def _merge(history: DoseHistory, times_h: np.ndarray) -> list[tuple[float, int, int]]:
    """Samples (kind 0) and doses (kind 1) in time order; a sample sorts before a simultaneous dose."""
    samples = [(float(t), 0, i) for i, t in enumerate(times_h)]
    doses = [(float(t), 1, i) for i, t in enumerate(history.times_h)]
    return sorted(samples + doses)
