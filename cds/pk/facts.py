"""``pk_facts``: the estimate as the ``pk.*`` facts of ``rules/facts.yaml`` (ng/mL, mg, probability 0-1).

A fact that does not apply, or whose value is not finite or outside the declared range, is left out
rather than sent as None or NaN.
"""

from __future__ import annotations

import math

from cds.pk.estimate import ExposureEstimate

CONC_RANGE = (0.0, 50000.0)  # ng/mL, as declared for pk.cmin_pred and friends
DAILY_MG_RANGE = (0.0, 1600.0)

FactValue = float | str | bool


def pk_facts(estimate: ExposureEstimate) -> dict[str, FactValue]:
    """The ``pk.*`` facts of an estimate.

    Parameters
    ----------
    estimate : ExposureEstimate
        The result of ``estimate_exposure``.

    Returns
    -------
    dict
        Fact name to value; keys that do not apply are omitted.

    Examples
    --------
    >>> from cds.pk.estimate import estimate_exposure
    >>> from cds.pk.examples import example_covariates, example_regimen
    >>> est = estimate_exposure("imatinib-widmer2006", example_covariates(), example_regimen(),
    ...                         target_ng_ml=1000, proposal_threshold=0.5)
    >>> facts = pk_facts(est)
    >>> facts["pk.method"], facts["pk.cmin_pred"], "pk.loglinear_cmin" in facts
    ('apriori', 623.2, False)
    """
    facts: dict[str, FactValue] = {"pk.method": estimate.method, "pk.out_of_domain": estimate.out_of_domain}
    band = estimate.trough_interval
    candidates = {
        "pk.cmin_pred": (estimate.cmin_pred_ng_ml, CONC_RANGE),
        "pk.cmin_p05": (band.p05 if band else None, CONC_RANGE),
        "pk.cmin_p95": (band.p95 if band else None, CONC_RANGE),
        "pk.p_target": (estimate.p_target, (0.0, 1.0)),
        "pk.loglinear_cmin": (estimate.loglinear.cmin_ng_ml if estimate.loglinear else None, CONC_RANGE),
        "pk.proposed_daily_mg": (estimate.proposed_daily_mg, DAILY_MG_RANGE),
    }
    for name, (value, (low, high)) in candidates.items():
        if value is not None and math.isfinite(value) and low <= value <= high:
            facts[name] = round(float(value), 4 if name == "pk.p_target" else 1)
    return facts
