"""The concentration-time plot of a recorded decision, redrawn from the PK inputs the audit log kept.

The estimate is re-run from ``payload["pk"]["inputs"]`` (deterministic: fixed seed), so the plot of a decision
from last month is the plot it had then. Drawn: measured levels, the individual curve at the current regimen
with its 5-95 % band from parameter uncertainty, the population (typical) curve, the target line and, from the
decision time on, the predicted curve at the proposed dose. matplotlib's object API only (no pyplot state); the
estimate re-runs in parallel, the drawing itself is serialised.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from cds.errors import CdsError, EstimationError
from cds.numbers import format_number
from cds.pk import Covariates, DoseEvent, ExposureEstimate, Level, Regimen, load_model
from cds.pk.inputs import build_history
from cds.pk.model import PkModel, apply_etas, typical_values
from cds.pk.predict import simulate
from cds.pk.uncertainty import create_rng, normal_draws

BAND_DRAWS = 300
BAND_SEED = 1
HISTORY_H = 72.0  # shown before the last measured level
FUTURE_H = 96.0  # shown after the decision: long enough to approach the new steady state
GRID = 600
_CACHE_SIZE = 16


class PlotUnavailable(CdsError):
    """The decision has no PK inputs to redraw from (no estimate, or recorded before inputs were kept)."""

    code = "plot-unavailable"


@dataclass(frozen=True)
class Replay:
    """The recorded PK inputs, parsed, and the estimate re-run from them."""

    estimate: ExposureEstimate
    model: PkModel
    covariates: Covariates
    regimen: Regimen
    doses: tuple[DoseEvent, ...]
    levels: tuple[Level, ...]
    now: datetime | None


def plot_available(payload: Mapping[str, Any]) -> str | None:
    """None when a plot can be drawn for this decision, else the reason (for the page)."""
    pk = payload.get("pk")
    if not isinstance(pk, Mapping):
        return "No PK estimate was made for this decision, so there is no concentration-time plot."
    if not pk.get("inputs"):
        return "The PK inputs of this decision were not recorded, so its plot cannot be redrawn."
    try:
        _parse(pk["inputs"])
    except (EstimationError, PlotUnavailable) as exc:
        return f"The recorded PK inputs cannot be read back ({exc}), so the plot cannot be redrawn."
    return None


def replay(inputs: Mapping[str, Any]) -> Replay:
    """Re-run the estimate from the plain inputs in the audit record."""
    from cds import pk_step

    parsed = _parse(inputs)
    run = getattr(pk_step, "run_estimate", None)
    if run is None:
        raise PlotUnavailable("this version of the PK step cannot re-run an estimate (no run_estimate)")
    estimate: ExposureEstimate = run(parsed)
    return Replay(
        estimate=estimate,
        model=load_model(parsed.model),
        covariates=parsed.covariates,
        regimen=parsed.regimen,
        doses=tuple(parsed.doses),
        levels=tuple(parsed.levels),
        now=parsed.now,
    )


def _parse(inputs: Mapping[str, Any]) -> Any:
    from cds import pk_step

    reader = getattr(pk_step, "PkInputs", None)
    if reader is None:
        raise PlotUnavailable("this version of the PK step cannot read recorded inputs (no PkInputs)")
    return reader.parse(inputs)


_cache: OrderedDict[str, bytes] = OrderedDict()
_cache_lock = threading.Lock()
DRAW_LOCK = threading.Lock()  # matplotlib keeps global state (font cache, rcParams): one figure at a time


def plot_png(payload: Mapping[str, Any], key: str | None = None) -> bytes:
    """The PNG for a decision payload; ``key`` (the audit entry hash) caches it, as the payload never changes."""
    if key is not None:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
    reason = plot_available(payload)
    if reason is not None:
        raise PlotUnavailable(reason)
    pk = payload["pk"]
    run = replay(pk["inputs"])
    with DRAW_LOCK:
        png = draw(run, proposed_regimen(payload), recorded_cmin=pk.get("cmin_pred"))
    if key is not None:
        with _cache_lock:
            _cache[key] = png
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return png


def proposed_regimen(payload: Mapping[str, Any]) -> tuple[float, float] | None:
    """(daily mg, interval h) the decision proposed: the composed dose change, else the PK model's proposal."""
    dose = payload.get("dose") or {}
    if dose.get("action") == "change" and dose.get("daily_mg"):
        return float(dose["daily_mg"]), float(dose.get("interval_h") or 24.0)
    pk = payload.get("pk") or {}
    proposed = pk.get("proposed_daily_mg")
    if proposed:
        interval = next(
            (float(row["interval_h"]) for row in pk.get("dose_table") or [] if row.get("daily_mg") == proposed), 24.0
        )
        return float(proposed), interval
    return None


def draw(run: Replay, proposed: tuple[float, float] | None, *, recorded_cmin: float | None = None) -> bytes:
    """The PNG: x in days relative to the decision, y in ng/mL."""
    from matplotlib.figure import Figure

    est, regimen = run.estimate, run.regimen
    levels = sorted(run.levels, key=lambda lv: lv.time)
    doses = sorted(run.doses, key=lambda d: d.time)
    if not doses:
        raise PlotUnavailable("the recorded PK inputs have no dose times")
    decision = run.now or max([doses[-1].time, *(lv.time for lv in levels)])
    end = decision + timedelta(hours=FUTURE_H)
    current_future = _future_doses(doses, regimen.dose_mg, regimen.interval_h, end)
    history = build_history(regimen, [*doses, *current_future], levels)
    origin_h = history.hours(decision)
    first_shown = history.hours((levels[0].time if levels else decision) - timedelta(hours=HISTORY_H))
    grid = np.linspace(max(first_shown, 0.0), history.hours(end), GRID)
    x = (grid - origin_h) / 24.0

    fig = Figure(figsize=(9, 5.8), dpi=100)
    ax = fig.add_subplot()
    band = _band(est, run.model, history, grid)
    ax.fill_between(x, band[0], band[1], color="#9ecae1", alpha=0.6, label="individual 5-95 % (parameter uncertainty)")
    individual = simulate(history, est.cl_l_h, est.v_l, est.ka_per_h, grid)[0]
    ax.plot(x, individual, color="#08519c", linewidth=1.8, label=f"individual ({est.method}) at {_regimen(regimen)}")
    typical = typical_values(run.model, run.covariates.values())
    population = simulate(history, typical.cl_l_h, typical.v_l, typical.ka_per_h, grid)[0]
    ax.plot(x, population, color="#525252", linestyle="--", linewidth=1.2, label="population (typical patient)")
    if proposed is not None and proposed != (regimen.daily_mg, regimen.interval_h):
        xs, ys = _proposed_curve(run, proposed, doses, current_future, decision, end, grid, x, origin_h)
        label = f"predicted at proposed {_regimen(_as_regimen(proposed))}"
        ax.plot(xs, ys, color="#d95f02", linewidth=1.8, label=label)
    ax.axhline(
        est.target_ng_ml,
        color="#b2182b",
        linewidth=1.3,
        linestyle=":",
        label=f"target {format_number(est.target_ng_ml)} ng/mL",
    )
    if levels:
        ax.scatter(
            [(history.hours(lv.time) - origin_h) / 24.0 for lv in levels],
            [lv.ng_ml for lv in levels],
            color="black",
            s=40,
            zorder=5,
            label="measured level",
        )
    ax.axvline(0.0, color="#969696", linewidth=0.8)
    ax.annotate(
        "decision",
        (0.0, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(3, -12),
        textcoords="offset points",
        fontsize=8,
    )
    ax.set_xlabel(f"days relative to the decision ({_when(decision)})")
    ax.set_ylabel("imatinib plasma concentration (ng/mL)")
    ax.set_title(
        f"{est.model_name}: predicted steady-state trough {est.cmin_pred_ng_ml:.0f} ng/mL "
        f"at {format_number(regimen.daily_mg)} mg/day",
        fontsize=11,
    )
    if recorded_cmin and abs(est.cmin_pred_ng_ml - recorded_cmin) > 0.005 * recorded_cmin:
        fig.text(
            0.01,
            0.01,
            f"note: the decision recorded {recorded_cmin:.0f} ng/mL; this redraw differs (model file changed since)",
            fontsize=8,
            color="#b2182b",
        )
    ax.set_ylim(bottom=0)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0.0, 0.14, 1.0, 1.0))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _proposed_curve(
    run: Replay,
    proposed: tuple[float, float],
    doses: list[DoseEvent],
    current_future: list[DoseEvent],
    decision: datetime,
    end: datetime,
    grid: np.ndarray,
    x: np.ndarray,
    origin_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """From the decision on: the recorded doses, then the proposed regimen from the next dose time."""
    new = _as_regimen(proposed)
    first = next((d.time for d in current_future if d.time >= decision), decision)
    steps = int((end - first) / timedelta(hours=new.interval_h)) + 1
    new_doses = [DoseEvent(first + timedelta(hours=new.interval_h * i), new.dose_mg) for i in range(steps)]
    kept = [d for d in [*doses, *current_future] if d.time < first]
    history = build_history(run.regimen, [*kept, *new_doses], list(run.levels))
    after = grid >= origin_h
    # same origin as the main history (its first dose is the same), so the grid hours line up
    est = run.estimate
    return x[after], simulate(history, est.cl_l_h, est.v_l, est.ka_per_h, grid[after])[0]


def _future_doses(doses: list[DoseEvent], dose_mg: float, interval_h: float, end: datetime) -> list[DoseEvent]:
    """The current regimen continued after the last recorded dose, up to ``end``."""
    step = timedelta(hours=interval_h)
    out, t = [], doses[-1].time + step
    while t <= end:
        out.append(DoseEvent(t, dose_mg))
        t += step
    return out


def _band(est: ExposureEstimate, model: PkModel, history: Any, grid: np.ndarray) -> np.ndarray:
    """5 and 95 % of curves for parameter draws around the estimate (MAP covariance, else the prior)."""
    covariance = np.array(est.map_fit.covariance) if est.map_fit else model.omega_matrix()
    draws = normal_draws(create_rng(BAND_SEED), np.zeros(len(covariance)), covariance, BAND_DRAWS)
    params = apply_etas(model, np.log([est.cl_l_h, est.v_l, est.ka_per_h]), draws)
    curves = simulate(history, params[:, 0], params[:, 1], params[:, 2], grid)
    return np.asarray(np.quantile(curves, [0.05, 0.95], axis=0))


def _as_regimen(proposed: tuple[float, float]) -> Regimen:
    daily, interval = proposed
    return Regimen(dose_mg=daily * interval / 24.0, interval_h=interval)


def _regimen(regimen: Regimen) -> str:
    every = f"{format_number(regimen.dose_mg)} mg every {format_number(regimen.interval_h)} h"
    return f"{format_number(regimen.daily_mg)} mg/day ({every})"


def _when(time: datetime) -> str:
    return f"{time:%Y-%m-%d %H:%M} UTC" if time.utcoffset() == timedelta(0) else time.isoformat(timespec="minutes")
