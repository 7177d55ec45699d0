"""The MAP objective of pk.md 4.1 with its analytic gradient, set up once per patient.

``OFV(eta) = sum_j [(y_j - f_j)^2 / s_j^2 + ln s_j^2] + eta' Omega^-1 eta`` with
``s_j^2 = (sigma_prop f_j)^2 + sigma_add^2``.

Why a separate kernel: the optimiser calls the objective dozens of times, so the dose history is reduced
once to a few *dose runs* per sample: a run is n doses of D mg every tau h, the last one ``a`` h before the
sample (n is infinite for the steady state before the history). Each run's amounts follow in closed form,
``D exp(-x a) (1 - exp(-x n tau)) / (1 - exp(-x tau))`` for x = k and x = ka (the event-driven propagation
of ``predict.simulate`` summed over a regular block), and
``f = 1000 ka / (V (ka - k)) (S(k) - S(ka))``. ``tests/pk/test_objective.py`` checks both agree.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from cds.pk.inputs import DoseHistory, Level
from cds.pk.model import PkModel, TypicalValues, apply_etas
from cds.pk.predict import MG_L_TO_NG_ML, NEAR_RATES, separate_rates

_MIN_CONC = 1e-9  # ng/mL; keeps ln s^2 finite for a prediction that underflows
_SAME_GAP_H = 1e-6
_SHORT_HISTORY = 200  # doses; longer histories find their runs with numpy


def dose_runs(history: DoseHistory, t_obs: float) -> list[tuple[float, float, float, float]]:
    """Doses before ``t_obs`` as runs ``(mg, hours from last dose to t_obs, count, interval)``.

    A run ends where the amount or the gap to the next dose changes, so each has one interval.
    """
    n = int(np.searchsorted(history.times_h, t_obs, side="left"))
    first = float(history.times_h[0]) if history.times_h.size else 0.0
    times, mg = history.times_h[:n].tolist(), history.mg[:n].tolist()
    starts = _run_starts_vectorised(history.times_h[:n], history.mg[:n]) if n > _SHORT_HISTORY else None
    return runs_of_doses(history, first, times, mg, t_obs, starts)


def runs_of_doses(
    history: DoseHistory,
    first: float,
    times: list[float],
    mg: list[float],
    t_obs: float,
    starts: list[int] | None = None,
) -> list[tuple[float, float, float, float]]:
    """``dose_runs`` of the doses ``times``/``mg`` (all before ``t_obs``; ``first`` the history's first dose
    time), with the steady state of ``history`` before them; ``starts`` as ``_run_starts`` finds them."""
    runs: list[tuple[float, float, float, float]] = []
    if history.ss_dose_mg is not None:
        tau = history.ss_interval_h
        runs.append((history.ss_dose_mg, t_obs - first + tau, math.inf, tau))
    n = len(times)
    if n == 0:
        return runs
    if starts is None:  # numpy's call overhead dominates on a few dozen doses
        starts = (
            _run_starts(times, mg) if n <= _SHORT_HISTORY else _run_starts_vectorised(np.array(times), np.array(mg))
        )
    ends = [*(s - 1 for s in starts[1:]), n - 1]
    for start, end in zip(starts, ends, strict=True):
        gap = times[start + 1] - times[start] if end > start else 1.0
        count = float(end - start + 1)
        if gap < _SAME_GAP_H:  # doses at one moment are one dose of their sum (the run formula's limit; it
            runs.append((mg[start] * count, t_obs - times[end], 1.0, 1.0))  # would divide by zero)
        else:
            runs.append((mg[start], t_obs - times[end], count, gap))
    return runs


def _run_starts(times: list[float], mg: list[float]) -> list[int]:
    """Index of each run's first dose: where the amount or the gap to the previous dose changes."""
    starts = [0]
    for i in range(1, len(times)):
        changed_gap = i > 1 and abs((times[i] - times[i - 1]) - (times[i - 1] - times[i - 2])) >= _SAME_GAP_H
        if mg[i] != mg[i - 1] or changed_gap:
            starts.append(i)
    return starts


def _run_starts_vectorised(times: np.ndarray, mg: np.ndarray) -> list[int]:
    gaps = np.diff(times)
    change = mg[1:] != mg[:-1]
    change[1:] |= np.abs(np.diff(gaps)) >= _SAME_GAP_H
    return [0, *(np.flatnonzero(change) + 1).tolist()]


def concentration_from_runs(
    runs: Sequence[tuple[float, float, float, float]], cl: float, v: float, ka: float, bioavailability: float = 1.0
) -> float:
    """Concentration (ng/mL) from the dose runs of one time point (see ``dose_runs``)."""
    k = cl / v
    if abs(ka - k) < NEAR_RATES * abs(ka):  # what separate_rates does, without numpy on one number
        k = float(separate_rates(k, ka))
    sums = []
    for x in (k, ka):
        total = 0.0
        for mg, age, count, tau in runs:
            q_n = 0.0 if count == math.inf else math.exp(-x * count * tau)
            total += mg * math.exp(-x * age) * (1.0 - q_n) / (1.0 - math.exp(-x * tau))
        sums.append(total)
    return MG_L_TO_NG_ML * bioavailability * ka / (v * (ka - k)) * (sums[0] - sums[1])


@functools.lru_cache(maxsize=16)
def _omega_inverse(omega: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
    """Omega^-1 of a model, once per process (numpy's inv costs some 8 us a call on a 2 x 2)."""
    return tuple(tuple(row) for row in np.linalg.inv(np.array(omega, dtype=float)).tolist())


class MapProblem:
    """Observations, dose runs and prior of one patient; evaluates OFV for one or many etas."""

    def __init__(self, model: PkModel, typical: TypicalValues, history: DoseHistory, levels: Sequence[Level]) -> None:
        self.model = model
        self.y = np.array([lv.ng_ml for lv in levels], dtype=float)
        bioavailability = model.bioavailability
        self.runs = [
            [(bioavailability * mg, *rest) for mg, *rest in dose_runs(history, history.hours(lv.time))] for lv in levels
        ]
        # per run, for the scalar sums: whether the run is finite, and count * tau of its tail term
        self._scalar_runs = [
            [(mg, age, count, tau, count != math.inf, count * tau) for mg, age, count, tau in runs]
            for runs in self.runs
        ]
        self.log_tv = typical.log_values()
        self.eta_index = model.eta_columns()
        inverse = _omega_inverse(model.omega)
        self.omega_inv = np.array(inverse)
        self._omega_inv_rows = [list(row) for row in inverse]
        self._log_tv_list = self.log_tv.tolist()
        self._y_list = self.y.tolist()
        self.sigma_prop2 = model.sigma_prop**2
        self.sigma_add2 = model.sigma_add_ng_ml**2
        self.ka_fixed = "KA" not in model.eta_parameters
        self._s_ka = self._sums_scalar(typical.ka_per_h)

    @functools.cached_property
    def _run_arrays(self) -> tuple[np.ndarray, ...]:
        """The runs as arrays for the vectorised OFV; built on first use (a fit alone seldom needs them)."""
        flat = [(j, *run) for j, runs in enumerate(self.runs) for run in runs]
        obs, mg, age, count, tau = np.array(flat, dtype=float).reshape(len(flat), 5).T
        infinite = np.isinf(count)
        to_obs = (obs[:, None] == np.arange(self.y.size)[None, :]).astype(float)
        return mg, age, tau, infinite, np.where(infinite, 1.0, count), to_obs

    @property
    def n_eta(self) -> int:
        return len(self.model.eta_parameters)

    def parameters(self, eta: np.ndarray) -> np.ndarray:
        """Individual (CL, V, ka) for eta of shape (n_eta,) or (n, n_eta); last axis is the parameter."""
        return apply_etas(self.model, self.log_tv, eta)

    def _sums(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """S(x) and dS/dx for x of shape (n,); results have shape (n, n_obs)."""
        run_mg, run_age, run_tau, run_infinite, run_count, to_obs = self._run_arrays
        xr = x[:, None]
        q = np.exp(-xr * run_tau)
        q_n = np.where(run_infinite, 0.0, np.exp(-xr * run_count * run_tau))
        term = run_mg * np.exp(-xr * run_age) * (1.0 - q_n) / (1.0 - q)
        n_tau = run_count * run_tau
        tail = np.where(run_infinite, 0.0, n_tau * q_n / np.where(q_n < 1.0, 1.0 - q_n, 1.0))
        dterm = term * (-run_age + tail - run_tau * q / (1.0 - q))
        return np.einsum("nr,ro->no", term, to_obs), np.einsum("nr,ro->no", dterm, to_obs)

    def _sums_scalar(self, x: float) -> tuple[list[float], list[float]]:
        """S(x) and dS/dx for one x with Python floats (a handful of runs per sample)."""
        s_all, ds_all = [], []
        exp = math.exp
        for runs in self._scalar_runs:
            s = ds = 0.0
            for mg, age, count, tau, finite, count_tau in runs:
                q = exp(-x * tau)
                q_n = exp(-x * count * tau) if finite else 0.0
                term = mg * exp(-x * age) * (1.0 - q_n) / (1.0 - q)
                tail = count_tau * q_n / (1.0 - q_n) if q_n else 0.0
                s += term
                ds += term * (-age + tail - tau * q / (1.0 - q))
            s_all.append(s)
            ds_all.append(ds)
        return s_all, ds_all

    def predict(self, eta: np.ndarray) -> np.ndarray:
        """Predicted levels (ng/mL) at the observation times for eta of shape (n_eta,) or (n, n_eta)."""
        etas = np.atleast_2d(eta)
        par = self.parameters(etas)
        cl, v, ka = par[:, 0:1], par[:, 1:2], par[:, 2:3]
        k = separate_rates(cl / v, ka)
        s_k = self._sums(k[:, 0])[0]
        s_ka = np.asarray(self._s_ka[0]) if self.ka_fixed else self._sums(ka[:, 0])[0]
        f = MG_L_TO_NG_ML * ka / (v * (ka - k)) * (s_k - s_ka)
        return np.asarray(f if np.ndim(eta) > 1 else f[0])

    def ofv(self, eta: np.ndarray) -> np.ndarray:
        """OFV for eta of shape (n_eta,) or (n, n_eta) (vectorised, no gradient)."""
        f = np.maximum(self.predict(eta), _MIN_CONC)
        s2 = self.sigma_prop2 * f * f + self.sigma_add2
        data = ((self.y - f) ** 2 / s2 + np.log(s2)).sum(-1)
        prior = np.einsum("...i,ij,...j->...", eta, self.omega_inv, eta)
        return np.asarray(data + prior)

    def ofv_and_gradient(self, eta: Sequence[float]) -> tuple[float, list[float]]:
        """OFV and its gradient for one eta (what the optimiser calls; Python floats, no BLAS, for speed)."""
        log_par = self._log_tv_list.copy()
        values = [float(e) for e in eta]
        for index, value in zip(self.eta_index, values, strict=True):
            log_par[index] += value
        cl, v, ka = math.exp(log_par[0]), math.exp(log_par[1]), math.exp(log_par[2])
        k = cl / v
        if abs(ka - k) < NEAR_RATES * ka:
            k = float(separate_rates(k, ka))
        s_k, ds_k = self._sums_scalar(k)
        s_ka, ds_ka = self._s_ka if self.ka_fixed else self._sums_scalar(ka)
        gap = ka - k
        amp = MG_L_TO_NG_ML * ka / (v * gap)
        sigma_prop2, sigma_add2 = self.sigma_prop2, self.sigma_add2
        ka_gradient = not self.ka_fixed  # with ka fixed its component is never read
        total = 0.0
        grad_cl = grad_v = grad_ka = 0.0
        for j, y in enumerate(self._y_list):
            sk, ska = s_k[j], s_ka[j]
            f = amp * (sk - ska)
            if f <= _MIN_CONC:  # clamped: this term is flat in eta
                s2 = sigma_prop2 * _MIN_CONC**2 + sigma_add2
                total += (y - _MIN_CONC) ** 2 / s2 + math.log(s2)
                continue
            dfdk = f / gap + amp * ds_k[j]
            r = y - f
            s2 = sigma_prop2 * f * f + sigma_add2
            total += r * r / s2 + math.log(s2)
            dofv_df = -2.0 * r / s2 + (1.0 / s2 - r * r / (s2 * s2)) * (2.0 * sigma_prop2 * f)
            grad_cl += dofv_df * k * dfdk
            grad_v += dofv_df * (-k * dfdk - f)
            if ka_gradient:
                dfdka = (MG_L_TO_NG_ML / v) * ((-k / (gap * gap)) * (sk - ska) - (ka / gap) * ds_ka[j])
                grad_ka += dofv_df * ka * dfdka
        grad_log = (grad_cl, grad_v, grad_ka)
        weighted, prior = self._prior(values)
        gradient = [grad_log[i] + 2.0 * w for i, w in zip(self.eta_index, weighted, strict=True)]
        return total + prior, gradient

    def _prior(self, values: list[float]) -> tuple[list[float], float]:
        """Omega^-1 eta and eta' Omega^-1 eta, summed term by term from 0.0 (two etas written out)."""
        rows = self._omega_inv_rows
        if len(values) == 2:
            (a, b), (c, d) = rows
            e0, e1 = values
            w0, w1 = 0.0 + a * e0 + b * e1, 0.0 + c * e0 + d * e1
            return [w0, w1], 0.0 + w0 * e0 + w1 * e1
        weighted = []
        prior = 0.0
        for row in rows:
            w = 0.0
            for w_i, e in zip(row, values, strict=True):
                w += w_i * e
            weighted.append(w)
        for w, e in zip(weighted, values, strict=True):
            prior += w * e
        return weighted, prior
