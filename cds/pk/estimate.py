"""``estimate_exposure``: from covariates, dose history and levels to the steady-state trough, its
uncertainty, the probability of target and a dose table (issue 3).

The trough is the concentration just before the next dose of the current regimen at steady state.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from cds.errors import EstimationError
from cds.numbers import format_number
from cds.pk.inputs import STEADY_STATE_H, Covariates, DoseEvent, DoseHistory, Level, Regimen, build_history
from cds.pk.loglinear import LogLinearEstimate, loglinear_estimate
from cds.pk.map import MapFit, fit_map
from cds.pk.model import PkModel, TypicalValues, apply_etas, load_model, typical_values
from cds.pk.objective import MapProblem, concentration_from_runs, runs_of_doses
from cds.pk.predict import MG_L_TO_NG_ML, NEAR_RATES, separate_rates
from cds.pk.uncertainty import (
    Percentiles,
    create_rng,
    draw_laplace,
    draw_prior,
    draw_sir,
    measured_level_draws,
    percentiles,
    sorted_percentiles,
)

DEFAULT_SEED = 20240601
N_DRAWS = 4000
# (daily mg, dosing interval h); 800 mg/day is given as 400 mg twice daily
DOSE_LADDER: tuple[tuple[float, float], ...] = (
    (100, 24),
    (200, 24),
    (300, 24),
    (400, 24),
    (600, 24),
    (800, 12),
)
INTERVAL_METHODS = ("laplace", "sir")
TROUGH_WINDOW = 0.1  # a level within 10 % of the interval from the trough time counts as a trough


@dataclass(frozen=True)
class DoseOption:
    """One row of the dose table: ``dose_mg`` every ``interval_h`` (= ``daily_mg`` per day).

    ``cmin_pred_ng_ml`` is the steady-state trough of the same parameters as the estimate's
    ``cmin_pred_ng_ml`` (the MAP individual, or the typical patient a priori), so the row of the current
    regimen repeats that number; the median, 5 % and 95 % are of the parameter-uncertainty draws.
    """

    daily_mg: float
    dose_mg: float
    interval_h: float
    cmin_pred_ng_ml: float
    cmin_median_ng_ml: float
    cmin_p05_ng_ml: float
    cmin_p95_ng_ml: float
    p_target: float


@dataclass(frozen=True)
class ExposureEstimate:
    """Everything the estimator concluded; optional fields are None when they do not apply.

    ``trough_interval`` is the 5/50/95 % range of the true steady-state trough from parameter
    uncertainty; ``level_prediction_interval`` is the wider range a future *measured* trough level could
    read (it adds residual error). ``p_target`` is the probability that the true trough reaches
    ``target_ng_ml``. ``cmin_next_ng_ml`` is the trough before ``next_dose_time`` given the real history
    (the regimen assumed taken from the last recorded dose on); None without a dose history.
    """

    model_name: str
    method: str
    regimen: Regimen
    target_ng_ml: float
    cl_l_h: float
    v_l: float
    ka_per_h: float
    eta: tuple[float, ...]
    eta_names: tuple[str, ...]
    cmin_pred_ng_ml: float
    next_dose_time: datetime | None
    cmin_next_ng_ml: float | None
    trough_interval: Percentiles | None
    level_prediction_interval: Percentiles | None
    p_target: float | None
    interval_method: str
    n_draws: int
    map_fit: MapFit | None
    loglinear: LogLinearEstimate | None
    dose_table: tuple[DoseOption, ...]
    proposed_daily_mg: float | None
    proposal_threshold: float
    out_of_domain: bool
    warnings: tuple[str, ...]


def estimate_exposure(
    model: PkModel | str | Path,
    covariates: Covariates,
    regimen: Regimen,
    doses: Sequence[DoseEvent] = (),
    levels: Sequence[Level] = (),
    *,
    target_ng_ml: float,
    proposal_threshold: float,
    caps_max_daily_mg: float | None = None,
    now: datetime | None = None,
    seed: int | np.random.Generator = DEFAULT_SEED,
    interval_method: str = "laplace",
    n_draws: int = N_DRAWS,
    dose_ladder: Sequence[tuple[float, float]] = DOSE_LADDER,
) -> ExposureEstimate:
    """Estimate the steady-state trough of the current regimen and a dose table.

    Parameters
    ----------
    model : PkModel, str or Path
        The population model (or its name in ``rules/models/``).
    covariates, regimen : Covariates, Regimen
        Patient covariates; current regimen (``since`` None: long-standing, at steady state).
    doses, levels : sequences of DoseEvent and Level
        Recorded doses (optional when ``regimen.since`` is given) and measured levels (ng/mL).
    target_ng_ml : float
        Trough target for ``p_target`` (e.g. 1000 CML, 1100 GIST).
    proposal_threshold : float
        Local policy: the smallest ladder dose whose probability of target reaches it is proposed.
    caps_max_daily_mg : float, optional
        Ladder doses above this daily dose are left out.
    now : datetime, optional
        Evaluation time; levels and doses after it are rejected.
    seed : int or numpy Generator
        Randomness of the interval draws (fixed by default, so results are reproducible).
    interval_method : {"laplace", "sir"}
        Posterior approximation for the intervals after a MAP fit.
    n_draws : int
        Number of parameter draws for percentiles and probabilities.
    dose_ladder : sequence of (daily mg, interval h)
        Candidate regimens.

    Returns
    -------
    ExposureEstimate

    Examples
    --------
    >>> from cds.pk.examples import example_covariates, example_doses, example_levels, example_regimen
    >>> est = estimate_exposure("imatinib-widmer2006", example_covariates(), example_regimen(),
    ...     example_doses(), example_levels((3, 1500)), target_ng_ml=1000, proposal_threshold=0.5)
    >>> est.method, round(est.cmin_pred_ng_ml), est.proposed_daily_mg
    ('map', 630, 800.0)
    """
    model = model if isinstance(model, PkModel) else _cached_model(str(model))
    _check_arguments(target_ng_ml, proposal_threshold, caps_max_daily_mg, interval_method, n_draws)
    _check_ladder(dose_ladder)
    _check_times(doses, levels, now)
    typical = typical_values(model, covariates.values())
    rng = create_rng(seed)
    given = (model, typical, regimen, target_ng_ml, proposal_threshold, caps_max_daily_mg, tuple(dose_ladder))
    private = not isinstance(seed, np.random.Generator)
    if not levels:
        request = _Request(*given, n_draws, rng, private_rng=private)
        draws = draw_prior(model, n_draws, request.rng)
        return _assemble(request, "apriori", None, draws, None, "prior", list(typical.warnings), a_priori=True)
    history = build_history(regimen, doses, levels)
    problem = MapProblem(model, typical, history, levels)
    fit = fit_map(problem)
    latest = max(levels, key=lambda lv: lv.time)
    request = _Request(*given, n_draws, rng, private_rng=private, history=history, reference=now or latest.time)
    drawn_on = history.interval_before(history.hours(latest.time), regimen.interval_h)
    loglinear = loglinear_estimate(history, latest, drawn_on)
    warnings = list(typical.warnings) + _history_warnings(history, latest, regimen)
    if not fit.converged:
        warnings.append(f"MAP fit did not converge: {fit.message}")
        return _fallback(request, fit, loglinear, history, latest, warnings)
    if interval_method == "sir":
        draws = draw_sir(problem, fit, n_draws, request.rng)
    else:
        draws = draw_laplace(fit, n_draws, request.rng)
    return _assemble(request, "map", fit, draws, loglinear, interval_method, warnings)


@functools.lru_cache(maxsize=16)
def _cached_model(name_or_path: str) -> PkModel:
    """Model files are read once per process, like the rule files."""
    return load_model(name_or_path)


@dataclass(frozen=True, eq=False)
class _Request:
    model: PkModel
    typical: TypicalValues
    regimen: Regimen
    target_ng_ml: float
    proposal_threshold: float
    caps_max_daily_mg: float | None
    dose_ladder: tuple[tuple[float, float], ...]
    n_draws: int
    rng: np.random.Generator
    private_rng: bool = False  # made from a seed here, so no caller sees its state afterwards
    history: DoseHistory | None = None
    reference: datetime | None = None


def _check_arguments(target: float, threshold: float, cap: float | None, interval_method: str, n_draws: int) -> None:
    if not (math.isfinite(target) and target > 0):
        raise EstimationError(f"Invalid `target_ng_ml`: got {target!r}, must be a positive number")
    if not 0.0 < threshold <= 1.0:
        raise EstimationError(f"Invalid `proposal_threshold`: got {threshold!r}, must be in (0, 1]")
    if cap is not None and not (math.isfinite(cap) and cap > 0):
        raise EstimationError(f"Invalid `caps_max_daily_mg`: got {cap!r}, must be a positive number")
    if interval_method not in INTERVAL_METHODS:
        raise EstimationError(f"Invalid `interval_method`: got {interval_method!r}, must be one of {INTERVAL_METHODS}")
    if n_draws < 100:
        raise EstimationError(f"Invalid `n_draws`: got {n_draws!r}, must be at least 100")


def _check_ladder(ladder: Sequence[tuple[float, float]]) -> None:
    for i, (daily_mg, interval_h) in enumerate(ladder):
        if not (math.isfinite(daily_mg) and math.isfinite(interval_h) and daily_mg > 0 and interval_h > 0):
            raise EstimationError(
                f"Invalid `dose_ladder[{i}]`: got {(daily_mg, interval_h)!r}, must be positive (daily mg, interval h)"
            )


def _check_times(doses: Sequence[DoseEvent], levels: Sequence[Level], now: datetime | None) -> None:
    if now is None:
        return
    if now.tzinfo is None:
        raise EstimationError(f"Invalid `now`: got {now!r}, must be timezone-aware")
    if all(lv.time <= now for lv in levels) and all(d.time <= now for d in doses):
        return  # the usual case, without building the list that names an offender
    times = [("levels", i, lv.time) for i, lv in enumerate(levels)]
    times += [("doses", i, d.time) for i, d in enumerate(doses)]
    for what, i, time in times:
        if time > now:
            raise EstimationError(
                f"Invalid `{what}[{i}].time`: got {time.isoformat()}, must not be after now ({now.isoformat()})"
            )


def _history_warnings(history: DoseHistory, latest: Level, regimen: Regimen) -> list[str]:
    t_h = history.hours(latest.time)
    on_regimen = history.hours_on_regimen(t_h, regimen.interval_h)
    if on_regimen < STEADY_STATE_H:
        return [
            f"latest level drawn after {on_regimen:.0f} h of regular dosing at {format_number(regimen.dose_mg)} mg "
            f"(< {format_number(STEADY_STATE_H)} h): not at steady state; the full dose history was used"
        ]
    return []


def _assemble(
    request: _Request,
    method: str,
    fit: MapFit | None,
    draws: np.ndarray,
    loglinear: LogLinearEstimate | None,
    interval_method: str,
    warnings: list[str],
    *,
    a_priori: bool = False,
) -> ExposureEstimate:
    """The estimate at the MAP eta (or eta = 0 when ``a_priori``), with intervals from ``draws``."""
    model, typical, regimen = request.model, request.typical, request.regimen
    eta = np.zeros(len(model.eta_parameters)) if a_priori or fit is None else np.array(fit.eta)
    log_typical = typical.log_values()
    cl, v, ka = apply_etas(model, log_typical, eta)
    units = _SortedUnitTroughs(model, log_typical, draws)
    troughs = regimen.dose_mg * units.at(regimen.interval_h)  # sorted
    table = _dose_table(request, units, (float(cl), float(v), float(ka)))
    proposed = _propose(table, request.proposal_threshold)
    next_time, cmin_next = _next_trough(request, float(cl), float(v), float(ka))
    if proposed is None:
        warnings.append(
            f"no ladder dose reaches P(trough >= {format_number(request.target_ng_ml)} ng/mL) "
            f">= {format_number(request.proposal_threshold)}"
        )
    return ExposureEstimate(
        model_name=model.name,
        method=method,
        regimen=regimen,
        target_ng_ml=request.target_ng_ml,
        cl_l_h=float(cl),
        v_l=float(v),
        ka_per_h=float(ka),
        eta=tuple(float(x) for x in eta),
        eta_names=model.eta_parameters,
        cmin_pred_ng_ml=_trough(regimen, float(cl), float(v), float(ka), model.bioavailability),
        next_dose_time=next_time,
        cmin_next_ng_ml=cmin_next,
        trough_interval=sorted_percentiles(troughs),
        level_prediction_interval=percentiles(
            measured_level_draws(troughs, model, request.rng, last_use=request.private_rng)
        ),
        p_target=_fraction_at_least(troughs, request.target_ng_ml),
        interval_method=interval_method,
        n_draws=len(draws),
        map_fit=fit,
        loglinear=loglinear,
        dose_table=table,
        proposed_daily_mg=proposed,
        proposal_threshold=request.proposal_threshold,
        out_of_domain=typical.out_of_domain,
        warnings=tuple(warnings),
    )


def _next_trough(request: _Request, cl: float, v: float, ka: float) -> tuple[datetime | None, float | None]:
    """Trough before the first scheduled dose after the reference time, given the real history.

    The regimen is assumed taken every interval from the last recorded dose up to that dose.
    """
    history, reference = request.history, request.reference
    if history is None or reference is None or not history.times_h.size:
        return None, None
    tau, last = request.regimen.interval_h, float(history.times_h[-1])
    steps = max(math.floor((history.hours(reference) - last) / tau) + 1, 1)
    t_next = last + steps * tau
    # the assumed doses at last + tau * i (as numpy's arange would give them), appended as floats
    times = history.times_h.tolist() + [last + tau * i for i in range(1, steps)]
    mg = history.mg.tolist() + [float(request.regimen.dose_mg)] * (steps - 1)
    before = bisect.bisect_left(times, t_next)
    runs = runs_of_doses(history, times[0], times[:before], mg[:before], t_next)
    conc = concentration_from_runs(runs, cl, v, ka, request.model.bioavailability)
    return history.origin + timedelta(hours=t_next), conc


def _trough(regimen: Regimen, cl: float, v: float, ka: float, bioavailability: float) -> float:
    """``steady_state_conc`` at the trough for one parameter set: numpy only for exp and expm1 (whose
    results differ from math's in the last digit), the rest in Python floats (the same IEEE operations)."""
    dose, tau = bioavailability * regimen.dose_mg, regimen.interval_h
    k = cl / v
    if abs(ka - k) < NEAR_RATES * abs(ka):
        k = k * (1.0 - 10 * NEAR_RATES)
    x = np.array([-k * tau, -ka * tau])
    (e_k, e_ka), (m_k, m_ka) = np.exp(x).tolist(), np.expm1(x).tolist()
    scale = MG_L_TO_NG_ML * dose * ka / (v * (ka - k))
    return float(scale * (e_k / -m_k - e_ka / -m_ka))


class _SortedUnitTroughs:
    """Sorted steady-state troughs per mg of each dose, per dosing interval, computed once.

    Troughs scale with the dose (linear kinetics), so one sorted set per interval serves every
    ladder row and the current regimen. The arithmetic is ``unit_troughs`` of the individual
    parameters, element for element, without its per-interval repeats: k and the amplitude are
    shared by the intervals, and a parameter without an eta stays one number instead of a column.
    """

    def __init__(self, model: PkModel, log_typical: np.ndarray, draws: np.ndarray) -> None:
        # CL, V, ka as in apply_etas: exp(log typical + eta), a scalar where no eta applies
        columns = model.eta_columns()
        values: list[np.ndarray | np.float64] = [
            np.exp(log_typical[i] + draws[:, columns.index(i)]) if i in columns else np.exp(log_typical[i])
            for i in range(len(log_typical))
        ]
        cl, v, ka = values
        k = cl / v
        gap = ka - k
        if np.any(np.abs(gap) < NEAR_RATES * np.abs(ka)):  # seldom: nudged as separate_rates does
            k = separate_rates(k, ka)
            gap = ka - k
        self._minus_k, self._ka = -k, ka
        self._scale = MG_L_TO_NG_ML * model.bioavailability * ka / (v * gap)
        self._cache: dict[float, np.ndarray] = {}

    def at(self, interval_h: float) -> np.ndarray:
        if interval_h not in self._cache:
            x_k, x_ka = self._minus_k * interval_h, -self._ka * interval_h
            elim = np.exp(x_k) / -np.expm1(x_k)
            absorb = np.exp(x_ka) / -np.expm1(x_ka)
            self._cache[interval_h] = np.sort(self._scale * (elim - absorb))
        return self._cache[interval_h]


def _fraction_at_least(sorted_values: np.ndarray, threshold: float) -> float:
    return float(1.0 - np.searchsorted(sorted_values, threshold, side="left") / sorted_values.size)


def _scaled_band(units: np.ndarray, dose_mg: float, target: float) -> tuple[Percentiles, float]:
    """``sorted_percentiles`` and ``_fraction_at_least`` of ``dose_mg * units`` (sorted), from a few elements.

    Scaling by a positive dose keeps the order, so the same positions are read and scaled; the count
    below the target starts from the unit threshold and is corrected by the exact scaled comparison.
    Elements are read as Python floats (``item``): the same IEEE products, without numpy scalars.
    """
    n = units.size
    last = n - 1

    def at(q: float) -> float:
        position = q * last
        low = int(position)
        high = min(low + 1, last)
        low_value, high_value = dose_mg * units.item(low), dose_mg * units.item(high)
        return float(low_value + (position - low) * (high_value - low_value))

    below = int(np.searchsorted(units, target / dose_mg, side="left"))
    while below > 0 and dose_mg * units.item(below - 1) >= target:
        below -= 1
    while below < n and dose_mg * units.item(below) < target:
        below += 1
    return Percentiles(at(0.05), at(0.5), at(0.95)), float(1.0 - below / n)


def _dose_table(
    request: _Request, units: _SortedUnitTroughs, parameters: tuple[float, float, float]
) -> tuple[DoseOption, ...]:
    """The ladder's rows; ``parameters`` (CL, V, ka) are those of the point estimate."""
    cl, v, ka = parameters
    bioavailability = request.model.bioavailability
    rows = []
    for daily_mg, interval_h in request.dose_ladder:
        if request.caps_max_daily_mg is not None and daily_mg > request.caps_max_daily_mg:
            continue
        dose_mg = daily_mg * interval_h / 24.0
        point = _trough(Regimen(dose_mg=dose_mg, interval_h=float(interval_h)), cl, v, ka, bioavailability)
        band, p_target = _scaled_band(units.at(interval_h), dose_mg, request.target_ng_ml)
        rows.append(
            DoseOption(
                daily_mg=float(daily_mg),
                dose_mg=dose_mg,
                interval_h=float(interval_h),
                cmin_pred_ng_ml=point,
                cmin_median_ng_ml=band.p50,
                cmin_p05_ng_ml=band.p05,
                cmin_p95_ng_ml=band.p95,
                p_target=p_target,
            )
        )
    return tuple(rows)


def _propose(table: Sequence[DoseOption], threshold: float) -> float | None:
    reaching = [row.daily_mg for row in table if row.p_target >= threshold]
    return min(reaching) if reaching else None


def _fallback(
    request: _Request,
    fit: MapFit,
    loglinear: LogLinearEstimate | None,
    history: DoseHistory,
    latest: Level,
    warnings: list[str],
) -> ExposureEstimate:
    """Without a MAP fit: a measured trough at steady state, else a reliable log-linear value, else a priori."""
    regimen = request.regimen
    after = history.hours_after_last_dose(history.hours(latest.time))
    on_regimen = history.hours_on_regimen(history.hours(latest.time), regimen.interval_h)
    at_trough = after is not None and abs(after - regimen.interval_h) <= TROUGH_WINDOW * regimen.interval_h
    if at_trough and on_regimen >= STEADY_STATE_H:
        method, cmin = "measured-trough", latest.ng_ml
    elif loglinear is not None and loglinear.reliable:
        method, cmin = "loglinear", loglinear.cmin_ng_ml
    else:
        draws = draw_prior(request.model, request.n_draws, request.rng)
        warnings.append("no usable level: a-priori (population) prediction")
        return _assemble(request, "apriori", fit, draws, loglinear, "prior", warnings, a_priori=True)
    typical = request.typical
    return ExposureEstimate(
        model_name=request.model.name,
        method=method,
        regimen=regimen,
        target_ng_ml=request.target_ng_ml,
        cl_l_h=fit.cl_l_h,
        v_l=fit.v_l,
        ka_per_h=fit.ka_per_h,
        eta=fit.eta,
        eta_names=fit.eta_names,
        cmin_pred_ng_ml=cmin,
        next_dose_time=None,  # needs trusted individual parameters
        cmin_next_ng_ml=None,
        trough_interval=None,
        level_prediction_interval=None,
        p_target=None,
        interval_method="none",
        n_draws=0,
        map_fit=fit,
        loglinear=loglinear,
        dose_table=(),
        proposed_daily_mg=None,
        proposal_threshold=request.proposal_threshold,
        out_of_domain=typical.out_of_domain,
        warnings=tuple(warnings),
    )
