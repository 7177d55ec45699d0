"""The PK stage of the pipeline: builds the estimator's plain inputs from a patient record.

The estimator runs only when its answer can be trusted to mean something: a level, known dose times,
the covariates of the model and a CML or GIST indication. Otherwise the trace says why it did not run and
the rules see no pk.* facts (they then ask for what is missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cds.engine.conditions import censor_companion
from cds.engine.policy import Policy
from cds.engine.render import format_value
from cds.errors import EstimationError
from cds.fhir import PatientRecord
from cds.fhir.values import SIDE_SIGN
from cds.pk import (
    Covariates,
    DoseEvent,
    ExposureEstimate,
    Level,
    Regimen,
    estimate_exposure,
    load_model,
    pk_facts,
)

MODEL = "imatinib-widmer2006"
TARGET_PARAMETER = {"CML": "cml_trough_target", "GIST": "gist_trough_target"}


@dataclass(frozen=True)
class PkStep:
    estimate: ExposureEstimate | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    warnings: Sequence[str] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)  # plain inputs, so a plot can be redrawn later

    @property
    def recorded(self) -> dict[str, Any] | None:
        """What ``estimate_for_record`` can reuse later: the estimator's inputs, its ``pk.*`` facts as made (facts
        from the record alone are made anew on reuse) and warnings."""
        if self.estimate is None:
            return None
        facts = {k: v for k, v in self.facts.items() if k.startswith("pk.")}
        return {"inputs": dict(self.inputs), "facts": facts, "warnings": list(self.warnings)}

    @property
    def summary(self) -> dict[str, Any] | None:
        e = self.estimate
        if e is None:
            return None
        band = e.trough_interval
        return {
            "method": e.method,
            "model": e.model_name,
            "cmin_pred": e.cmin_pred_ng_ml,
            "cmin_p05": band.p05 if band else None,
            "cmin_p95": band.p95 if band else None,
            "p_target": e.p_target,
            "target": e.target_ng_ml,
            "cl": e.cl_l_h,
            "v": e.v_l,
            "loglinear_cmin": e.loglinear.cmin_ng_ml if e.loglinear else None,
            "proposed_daily_mg": e.proposed_daily_mg,
            "out_of_domain": e.out_of_domain,
            "inputs": dict(self.inputs),
            "dose_table": [
                {
                    "daily_mg": o.daily_mg,
                    "interval_h": o.interval_h,
                    "cmin_pred": o.cmin_pred_ng_ml,
                    "cmin_median": o.cmin_median_ng_ml,
                    "cmin_p05": o.cmin_p05_ng_ml,
                    "cmin_p95": o.cmin_p95_ng_ml,
                    "p_target": o.p_target,
                }
                for o in e.dose_table
            ],
        }

    @property
    def lines(self) -> list[str]:
        e = self.estimate
        if e is None:
            return []
        band = e.trough_interval
        lines = [
            f"Method: {e.method} ({e.model_name}); predicted steady-state trough "
            f"{format_value(e.cmin_pred_ng_ml)} ng/mL"
            + (f" (90% interval {format_value(band.p05)}-{format_value(band.p95)})" if band else "")
        ]
        if e.p_target is not None:
            lines.append(f"Probability the trough reaches {format_value(e.target_ng_ml)} ng/mL: {e.p_target:.0%}")
        if e.loglinear is not None:
            lines.append(
                f"Log-linear extrapolation (Wang 2009), for comparison: {format_value(e.loglinear.cmin_ng_ml)} ng/mL"
            )
        return lines


def estimate_for_record(
    record: PatientRecord, policy: Policy, recorded: Mapping[str, Any] | None = None, *, same_record: bool = False
) -> PkStep:
    """The PK step for a record. ``recorded`` is an earlier step (``PkStep.recorded``, kept in the audit log):
    when the estimator would get the very same inputs, its facts are taken instead of estimating again (the
    estimate is a deterministic function of its inputs), which is what makes replaying a month of decisions
    with candidate rules fast. ``same_record``: the record is the one that step was made on, so only what the
    policy gives the estimator can differ."""
    censored = record.facts.get(censor_companion("level.conc"))
    if censored is not None:
        # An older level must not stand in for a newer one below the LLOQ (or above the ULOQ): no estimate,
        # so no escalation can rest on it (clinical-rules.md §9.1).
        shown = f"{SIDE_SIGN.get(str(censored.value), '')}{format_value(record.facts['level.conc'].value)} ng/mL"
        return PkStep(warnings=(f"PK estimate not run: the latest imatinib level is reported only as {shown}",))
    missing = _missing_inputs(record)
    if missing:
        return PkStep(warnings=(f"PK estimate not run: {missing}",) if record.levels else ())
    cov = record.covariates
    assert cov.sex and cov.age_years is not None and cov.weight_kg is not None and cov.indication
    daily, interval = float(record.facts["regimen.daily_mg"].value), float(record.facts["regimen.interval_h"].value)
    target = policy.quantity(TARGET_PARAMETER[cov.indication]).value
    threshold = float(policy.get("pk_target_probability", 0.5))
    if recorded is not None and same_record and _same_settings(recorded["inputs"], target, threshold):
        return PkStep(
            None, {**recorded["facts"], **_history_facts(record)}, tuple(recorded["warnings"]), recorded["inputs"]
        )
    try:
        inputs = PkInputs(
            model=MODEL,
            covariates=Covariates(
                sex=cov.sex if cov.sex in ("male", "female") else "unknown",
                age_y=cov.age_years,
                weight_kg=cov.weight_kg,
                indication=cov.indication,
            ),
            regimen=Regimen(dose_mg=daily * interval / 24, interval_h=interval),
            doses=tuple(DoseEvent(d.time, d.mg) for d in record.doses),
            levels=tuple(Level(lv.time, lv.ng_ml) for lv in record.levels),
            target_ng_ml=target,
            proposal_threshold=threshold,
            now=record.now,
        )
        plain = inputs.plain()
        if recorded is not None and recorded.get("inputs") == plain:
            return PkStep(None, {**recorded["facts"], **_history_facts(record)}, tuple(recorded["warnings"]), plain)
        estimate = run_estimate(inputs)
    except EstimationError as exc:
        return PkStep(warnings=(f"PK estimate not run: {exc}",))
    return PkStep(estimate, {**pk_facts(estimate), **_history_facts(record)}, estimate.warnings, plain)


def _same_settings(inputs: Mapping[str, Any], target: float, threshold: float) -> bool:
    """Whether recorded inputs made from the same record had these settings: everything else in PkInputs comes
    from the record (covariates, regimen, doses, levels, now)."""
    return bool(
        inputs["model"] == MODEL and inputs["target_ng_ml"] == target and inputs["proposal_threshold"] == threshold
    )


def _history_facts(record: PatientRecord) -> dict[str, bool]:
    """Whether the estimator saw doses from before the current dose started (escalation gate, issue 13)."""
    days = record.facts.get("regimen.days_on_dose")
    if days is None or not isinstance(days.value, float) or not record.doses:
        return {}
    current_since = record.now - timedelta(days=days.value)
    return {"dosing.history_covers_change": record.doses[0].time < current_since}


@dataclass(frozen=True)
class PkInputs:
    """Everything the estimator was given; ``plain()`` is what the audit log keeps, ``parse`` reads it back."""

    model: str
    covariates: Covariates
    regimen: Regimen
    doses: tuple[DoseEvent, ...]
    levels: tuple[Level, ...]
    target_ng_ml: float
    proposal_threshold: float
    now: datetime | None

    def plain(self) -> dict[str, Any]:
        c, r = self.covariates, self.regimen
        return {
            "model": self.model,
            "covariates": {"sex": c.sex, "age_y": c.age_y, "weight_kg": c.weight_kg, "indication": c.indication},
            "regimen": {
                "dose_mg": r.dose_mg,
                "interval_h": r.interval_h,
                "since": r.since.isoformat() if r.since else None,
            },
            "doses": [{"time": d.time.isoformat(), "mg": d.mg} for d in self.doses],
            "levels": [{"time": lv.time.isoformat(), "ng_ml": lv.ng_ml} for lv in self.levels],
            "target_ng_ml": self.target_ng_ml,
            "proposal_threshold": self.proposal_threshold,
            "now": self.now.isoformat() if self.now else None,
        }

    @classmethod
    def parse(cls, plain: Mapping[str, Any]) -> PkInputs:
        """The inputs ``plain()`` wrote; EstimationError when they are missing or malformed."""
        try:
            c, r = plain["covariates"], plain["regimen"]
            return cls(
                model=str(plain["model"]),
                covariates=Covariates(
                    sex=c["sex"], age_y=c["age_y"], weight_kg=c["weight_kg"], indication=c["indication"]
                ),
                regimen=Regimen(
                    dose_mg=r["dose_mg"], interval_h=r["interval_h"], since=_time(r["since"]) if r["since"] else None
                ),
                doses=tuple(DoseEvent(_time(d["time"]), d["mg"]) for d in plain["doses"]),
                levels=tuple(Level(_time(lv["time"]), lv["ng_ml"]) for lv in plain["levels"]),
                target_ng_ml=float(plain["target_ng_ml"]),
                proposal_threshold=float(plain["proposal_threshold"]),
                now=_time(plain["now"]) if plain.get("now") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EstimationError(f"PK inputs cannot be read back: {type(exc).__name__} {exc}") from exc


def run_estimate(inputs: PkInputs | Mapping[str, Any]) -> ExposureEstimate:
    """The estimate for these inputs (plain ones from the audit log too); deterministic (fixed seed)."""
    given = inputs if isinstance(inputs, PkInputs) else PkInputs.parse(inputs)
    return estimate_exposure(
        load_model(given.model),
        given.covariates,
        given.regimen,
        list(given.doses),
        list(given.levels),
        target_ng_ml=given.target_ng_ml,
        proposal_threshold=given.proposal_threshold,
        now=given.now,
    )


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _missing_inputs(record: PatientRecord) -> str:
    cov = record.covariates
    needs = {
        "no imatinib level": not record.levels,
        "no dose times (the time of the last dose is needed)": record.dose_source == "none" or not record.doses,
        "indication is not CML or GIST": cov.indication not in TARGET_PARAMETER,
        "no age": cov.age_years is None,
        "no body weight": cov.weight_kg is None,
        "no sex": cov.sex is None,
        "no current regimen": "regimen.daily_mg" not in record.facts or "regimen.interval_h" not in record.facts,
    }
    return "; ".join(reason for reason, lacking in needs.items() if lacking)
