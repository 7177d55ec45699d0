"""Imatinib PK estimator: population model as data, MAP fit to random-time levels, trough with
uncertainty, probability of target, dose table, log-linear comparison and ``pk.*`` facts (issue 3).

Public API::

    load_model(name_or_path) -> PkModel
    estimate_exposure(model, covariates, regimen, doses, levels, *, target_ng_ml, proposal_threshold,
                      caps_max_daily_mg=None, now=None, seed=DEFAULT_SEED, interval_method="laplace",
                      n_draws=N_DRAWS, dose_ladder=DOSE_LADDER) -> ExposureEstimate
    pk_facts(estimate) -> dict[str, float | str | bool]
"""

from cds.pk.estimate import DEFAULT_SEED, DOSE_LADDER, N_DRAWS, DoseOption, ExposureEstimate, estimate_exposure
from cds.pk.facts import pk_facts
from cds.pk.inputs import Covariates, DoseEvent, Level, Regimen
from cds.pk.loglinear import LogLinearEstimate, loglinear_trough
from cds.pk.map import MapFit
from cds.pk.model import PkModel, load_model
from cds.pk.uncertainty import Percentiles

__all__ = [
    "DEFAULT_SEED",
    "DOSE_LADDER",
    "N_DRAWS",
    "Covariates",
    "DoseEvent",
    "DoseOption",
    "ExposureEstimate",
    "Level",
    "LogLinearEstimate",
    "MapFit",
    "Percentiles",
    "PkModel",
    "Regimen",
    "estimate_exposure",
    "load_model",
    "loglinear_trough",
    "pk_facts",
]
