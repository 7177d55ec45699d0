"""Concentration-time plot of an estimate: observed levels, individual and population curves, the
5-95 % band from parameter uncertainty and the target line (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from cds.numbers import format_number
from cds.pk.estimate import ExposureEstimate
from cds.pk.inputs import Covariates, DoseEvent, DoseHistory, Level, Regimen, build_history, regular_doses
from cds.pk.model import PkModel, apply_etas, typical_values
from cds.pk.predict import simulate
from cds.pk.uncertainty import create_rng, normal_draws

BAND_DRAWS = 300
HISTORY_SHOWN_H = 96.0


def plot_estimate(
    estimate: ExposureEstimate,
    model: PkModel,
    covariates: Covariates,
    regimen: Regimen,
    doses: Sequence[DoseEvent],
    levels: Sequence[Level],
    path: Path,
    *,
    seed: int = 1,
) -> None:
    """Write a PNG of the last days of the dose history and the next interval.

    Examples
    --------
    >>> import tempfile
    >>> from cds.pk.estimate import estimate_exposure
    >>> from cds.pk.examples import example_covariates, example_doses, example_levels, example_regimen
    >>> levels = example_levels((3, 1500))
    >>> est = estimate_exposure("imatinib-widmer2006", example_covariates(), example_regimen(),
    ...     example_doses(50), levels, target_ng_ml=1000, proposal_threshold=0.5)
    >>> from cds.pk.model import load_model
    >>> out = Path(tempfile.mkdtemp()) / "pk.png"
    >>> plot_estimate(est, load_model("imatinib-widmer2006"), example_covariates(), example_regimen(),
    ...               example_doses(50), levels, out)
    >>> out.stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history, end_h = _history_for_plot(regimen, doses, levels)
    grid = np.linspace(max(0.0, end_h - HISTORY_SHOWN_H - regimen.interval_h), end_h, 400)
    typical = typical_values(model, covariates.values())
    individual = simulate(history, estimate.cl_l_h, estimate.v_l, estimate.ka_per_h, grid)[0]
    population = simulate(history, typical.cl_l_h, typical.v_l, typical.ka_per_h, grid)[0]
    band = _band(estimate, model, history, grid, seed)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.fill_between(grid, band[0], band[1], alpha=0.25, label="5-95 % (parameter uncertainty)")
    ax.plot(grid, individual, label=f"individual ({estimate.method})")
    ax.plot(grid, population, linestyle="--", label="population (typical)")
    ax.axhline(
        estimate.target_ng_ml, color="tab:red", linewidth=1, label=f"target {format_number(estimate.target_ng_ml)}"
    )
    if levels:
        ax.scatter(
            [history.hours(lv.time) for lv in levels],
            [lv.ng_ml for lv in levels],
            color="k",
            zorder=3,
            label="measured",
        )
    ax.set_xlabel(f"hours since first dose ({history.origin:%Y-%m-%d %H:%M %Z})")
    ax.set_ylabel("imatinib (ng/mL)")
    ax.set_title(f"{estimate.model_name}: predicted steady-state trough {estimate.cmin_pred_ng_ml:.0f} ng/mL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _history_for_plot(
    regimen: Regimen, doses: Sequence[DoseEvent], levels: Sequence[Level]
) -> tuple[DoseHistory, float]:
    """The dose history to draw and where the plot ends (h); a steady-state regimen without dose times."""
    last_level = max((lv.time for lv in levels), default=None)
    if not doses and regimen.since is not None:
        until = max(last_level or regimen.since, regimen.since + timedelta(hours=HISTORY_SHOWN_H))
        doses = regular_doses(regimen, until)
    if not doses:  # no dose times (only without levels): a steady state shown from an arbitrary dose
        anchor = datetime(2000, 1, 1, tzinfo=UTC)
        steady = Regimen(regimen.dose_mg, regimen.interval_h)
        doses = regular_doses(Regimen(regimen.dose_mg, regimen.interval_h, anchor), anchor + timedelta(days=2))
        return build_history(steady, doses, []), float(HISTORY_SHOWN_H)
    history = build_history(regimen, doses, levels)
    last_h = max([float(history.times_h[-1])] + [history.hours(lv.time) for lv in levels])
    return history, last_h + regimen.interval_h


def _band(estimate: ExposureEstimate, model: PkModel, history: DoseHistory, grid: np.ndarray, seed: int) -> np.ndarray:
    """5 and 95 % of simulated curves for parameter draws around the estimate."""
    rng = create_rng(seed)
    covariance = np.array(estimate.map_fit.covariance) if estimate.map_fit else model.omega_matrix()
    draws = normal_draws(rng, np.zeros(len(covariance)), covariance, BAND_DRAWS)
    base = np.log([estimate.cl_l_h, estimate.v_l, estimate.ka_per_h])
    params = apply_etas(model, base, draws)
    curves = simulate(history, params[:, 0], params[:, 1], params[:, 2], grid)
    return np.asarray(np.quantile(curves, [0.05, 0.95], axis=0))
