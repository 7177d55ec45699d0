"""``imatinib-cds pk estimate PATIENT.json``: the PK estimator on a patient file (or a list of them).

Input (one patient, or a list of them, or ``{"patients": [...]}`` for research batches)::

    {"model": "imatinib-widmer2006",
     "patient": {"sex": "male", "age_y": 50, "weight_kg": 70, "indication": "CML"},
     "regimen": {"dose_mg": 400, "interval_h": 24, "since": "2026-01-01T08:00:00Z"},
     "doses": [{"time": "...", "mg": 400}], "levels": [{"time": "...", "ng_ml": 1500}]}

``doses`` is optional (regular dosing from ``since`` is assumed); without ``since`` the patient is at
steady state before the recorded doses.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cds.engine.policy import Policy, load_policy
from cds.errors import CdsError, EstimationError, InvalidInput
from cds.numbers import format_number
from cds.pk import (
    DEFAULT_SEED,
    Covariates,
    DoseEvent,
    ExposureEstimate,
    Level,
    PkModel,
    Regimen,
    estimate_exposure,
    load_model,
    pk_facts,
)
from cds.shipped import shipped_rules

DEFAULT_MODEL = "imatinib-widmer2006"
POLICY_FILE = shipped_rules() / "policy.yaml"
TARGET_PARAMETERS = {"CML": "cml_trough_target", "GIST": "gist_trough_target"}


@functools.lru_cache(maxsize=1)
def _policy() -> Policy:
    """Targets and the proposal threshold come from rules/policy.yaml, as in the service."""
    return load_policy(POLICY_FILE)


def default_threshold() -> float:
    return float(_policy().get("pk_target_probability", 0.5))


def default_target(indication: str) -> float:
    return _policy().quantity(TARGET_PARAMETERS[indication]).value


EXIT_OK, EXIT_SOME_FAILED = 0, 1

T = TypeVar("T")
Parsed = tuple[PkModel, Covariates, Regimen, list[DoseEvent], list[Level]]


def register(sub: Any) -> None:
    area = sub.add_parser("pk", help="imatinib PK estimator (MAP trough, intervals, dose table)")
    commands = area.add_subparsers(dest="pk_command", required=True, metavar="COMMAND")
    est = commands.add_parser(
        "estimate",
        help="estimate the steady-state trough from random-time levels",
        description=(__doc__ or "").replace("``", ""),
        epilog=(
            "The trough is the level just before the next dose of the current regimen at steady state. "
            "Exit codes: 0 all estimated; 1 some batch entries failed; 2 invalid input file."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    est.add_argument("patient_file", metavar="PATIENT.json", type=Path, help="one patient or a list (batch)")
    est.add_argument("--json", action="store_true", help="print JSON (a list for batch files)")
    est.add_argument("--plot", metavar="OUT.png", type=Path, help="draw levels, curves, band and target")
    est.add_argument(
        "--target",
        type=float,
        metavar="NG_ML",
        help="trough target (default: the indication's target in rules/policy.yaml)",
    )
    est.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability of target a proposed dose must reach; local policy "
        "(default: pk_target_probability in rules/policy.yaml)",
    )
    est.add_argument("--max-daily-mg", type=float, metavar="MG", help="cap on proposed daily doses")
    est.add_argument("--intervals", choices=("laplace", "sir"), default="laplace", help="posterior approximation")
    est.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the interval draws")
    est.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    raw = _read_json(args.patient_file)
    if isinstance(raw, dict) and "patients" not in raw:
        return _run_single(args, raw)
    patients, prefix = (raw["patients"], "patients") if isinstance(raw, dict) else (raw, "")
    if not isinstance(patients, list):
        raise InvalidInput(prefix or "$", f"expected a list of patients, got {type(patients).__name__}")
    if args.plot:
        raise InvalidInput(prefix or "$", "--plot draws one patient; the file holds a list")
    return _run_batch(args, patients, prefix)


def _check_options(args: argparse.Namespace) -> None:
    if args.threshold is None:
        args.threshold = default_threshold()
    if not 0.0 < args.threshold <= 1.0:
        raise InvalidInput("--threshold", f"got {format_number(args.threshold)}, must be a probability in (0, 1]")
    for option, value in (("--target", args.target), ("--max-daily-mg", args.max_daily_mg)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InvalidInput(option, f"got {format_number(value)}, must be a positive number")


def _run_single(args: argparse.Namespace, raw: dict[str, Any]) -> int:
    parsed = _parse_patient(raw, "")
    estimate = _estimate(args, parsed, "")
    if args.plot:
        from cds.pk.plot import plot_estimate

        model, covariates, regimen, doses, levels = parsed
        plot_estimate(estimate, model, covariates, regimen, doses, levels, args.plot)
    if args.json:
        print(json.dumps(estimate_to_json(estimate), indent=2, allow_nan=False))
    else:
        print(summary(estimate))
    return EXIT_OK


def _run_batch(args: argparse.Namespace, patients: list[Any], prefix: str) -> int:
    results: list[dict[str, Any]] = []
    for i, raw in enumerate(patients):
        path = f"{prefix}[{i}]"
        try:
            results.append(estimate_to_json(_estimate(args, _parse_patient(raw, path), path)))
        except CdsError as exc:
            results.append({"index": i, "error": f"{type(exc).__name__}: {exc}"})
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False))
    else:
        for i, result in enumerate(results):
            print(f"[{i}] " + (result["error"] if "error" in result else _short_line(result)))
    return EXIT_SOME_FAILED if any("error" in r for r in results) else EXIT_OK


def _estimate(args: argparse.Namespace, parsed: Parsed, path: str) -> ExposureEstimate:
    model, covariates, regimen, doses, levels = parsed
    target = args.target if args.target is not None else default_target(covariates.indication)
    try:
        return estimate_exposure(
            model,
            covariates,
            regimen,
            doses,
            levels,
            target_ng_ml=target,
            proposal_threshold=args.threshold,
            caps_max_daily_mg=args.max_daily_mg,
            seed=args.seed,
            interval_method=args.intervals,
        )
    except EstimationError as exc:
        raise InvalidInput(_error_path(str(exc), path), str(exc)) from exc


_FIELD = re.compile(r"`([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)*)`")
_PATIENT_FIELDS = {"sex", "age_y", "weight_kg", "indication", "agp_g_l", "albumin_g_l"}


def _error_path(message: str, prefix: str) -> str:
    """The JSON path an estimator message names (``Invalid `levels[0].time`: ...``), else the patient."""
    match = _FIELD.search(message)
    if not match:
        return prefix or "$"
    field = match.group(1)
    field = f"patient.{field}" if field in _PATIENT_FIELDS else field
    return f"{prefix}.{field}" if prefix else field


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot read the file: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(str(path), f"not JSON: {exc.msg} at line {exc.lineno}") from exc


def _parse_patient(raw: Any, prefix: str) -> Parsed:
    def at(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    _expect_object(raw, prefix or "$")
    model_name = raw.get("model", DEFAULT_MODEL)
    if not isinstance(model_name, str):
        raise InvalidInput(at("model"), f"expected a model name, got {model_name!r}")
    model = _guard(at("model"), lambda: load_model(model_name))
    covariates = _covariates(_expect_object(raw.get("patient"), at("patient")), at("patient"))
    regimen = _regimen(_expect_object(raw.get("regimen"), at("regimen")), at("regimen"))
    doses = [_dose(d, f"{at('doses')}[{i}]") for i, d in enumerate(_list(raw, "doses", at("doses")))]
    levels = [_level(lv, f"{at('levels')}[{i}]") for i, lv in enumerate(_list(raw, "levels", at("levels")))]
    return model, covariates, regimen, doses, levels


def _covariates(raw: dict[str, Any], path: str) -> Covariates:
    sex, indication = _code(raw, "sex", path), _code(raw, "indication", path)
    age, weight = _number(raw, "age_y", path), _number(raw, "weight_kg", path)
    agp, albumin = _optional_number(raw, "agp_g_l", path), _optional_number(raw, "albumin_g_l", path)
    return _guard(path, lambda: Covariates(sex, age, weight, indication, agp, albumin))


def _regimen(raw: dict[str, Any], path: str) -> Regimen:
    dose, interval = _number(raw, "dose_mg", path), _number(raw, "interval_h", path)
    since = None if raw.get("since") is None else _time(raw["since"], f"{path}.since")
    return _guard(path, lambda: Regimen(dose, interval, since))


def _dose(raw: Any, path: str) -> DoseEvent:
    item = _expect_object(raw, path)
    return _guard(path, lambda: DoseEvent(_time(item.get("time"), f"{path}.time"), _number(item, "mg", path)))


def _level(raw: Any, path: str) -> Level:
    item = _expect_object(raw, path)
    value = _number(item, "ng_ml", path)
    if value <= 0:
        raise InvalidInput(
            f"{path}.ng_ml", f"got {format_number(value)}, must be a positive concentration (BLQ not supported)"
        )
    return _guard(path, lambda: Level(_time(item.get("time"), f"{path}.time"), value))


def _guard(base: str, build: Callable[[], T]) -> T:
    """Run a validating constructor; its error names a field, reported under ``base``."""
    try:
        return build()
    except EstimationError as exc:
        match = _FIELD.search(str(exc))
        field = match.group(1).rsplit(".", 1)[-1] if match else ""
        raise InvalidInput(f"{base}.{field}" if field else base, str(exc)) from exc


def _expect_object(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput(path, f"expected an object, got {type(raw).__name__}")
    return raw


def _list(raw: dict[str, Any], key: str, path: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise InvalidInput(path, f"expected a list, got {type(value).__name__}")
    return value


def _number(raw: dict[str, Any], key: str, path: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{path}.{key}", f"expected a number, got {value!r}")
    return float(value)


def _optional_number(raw: dict[str, Any], key: str, path: str) -> float | None:
    return None if raw.get(key) is None else _number(raw, key, path)


def _code(raw: dict[str, Any], key: str, path: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise InvalidInput(f"{path}.{key}", f"expected a string, got {value!r}")
    return value


def _time(raw: Any, path: str) -> datetime:
    if not isinstance(raw, str):
        raise InvalidInput(path, f"expected an ISO-8601 date-time, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(path, f"expected an ISO-8601 date-time, got {raw!r}") from exc
    if value.tzinfo is None:
        raise InvalidInput(path, f"got {raw!r}, the date-time needs a time zone (Z or +hh:mm)")
    return value


def estimate_to_json(estimate: ExposureEstimate) -> dict[str, Any]:
    """The estimate as plain JSON values (None where a value does not apply; never NaN)."""
    fit, band, pi, ll = (
        estimate.map_fit,
        estimate.trough_interval,
        estimate.level_prediction_interval,
        estimate.loglinear,
    )
    return {
        "model": estimate.model_name,
        "method": estimate.method,
        "cl": estimate.cl_l_h,
        "v": estimate.v_l,
        "ka": estimate.ka_per_h,
        "eta": list(estimate.eta),
        "eta_names": list(estimate.eta_names),
        "converged": fit.converged if fit else None,
        "objective": fit.objective if fit else None,
        "message": fit.message if fit else "no level: a-priori prediction",
        "cmin_pred": estimate.cmin_pred_ng_ml,
        "next_dose_time": estimate.next_dose_time.isoformat() if estimate.next_dose_time else None,
        "cmin_next": estimate.cmin_next_ng_ml,
        "cmin_p05": band.p05 if band else None,
        "cmin_p50": band.p50 if band else None,
        "cmin_p95": band.p95 if band else None,
        "interval": f"steady-state trough, parameter uncertainty ({estimate.interval_method})",
        "measured_trough_pi_p05": pi.p05 if pi else None,
        "measured_trough_pi_p95": pi.p95 if pi else None,
        "target_ng_ml": estimate.target_ng_ml,
        "p_target": estimate.p_target,
        "loglinear_cmin": ll.cmin_ng_ml if ll else None,
        "loglinear_reliable": ll.reliable if ll else None,
        "loglinear_note": ll.reason if ll else None,
        "dose_table": [
            {
                "daily_mg": row.daily_mg,
                "dose_mg": row.dose_mg,
                "interval_h": row.interval_h,
                "cmin_median": row.cmin_median_ng_ml,
                "cmin_p05": row.cmin_p05_ng_ml,
                "cmin_p95": row.cmin_p95_ng_ml,
                "p_target": row.p_target,
            }
            for row in estimate.dose_table
        ],
        "proposed_daily_mg": estimate.proposed_daily_mg,
        "proposal_threshold": estimate.proposal_threshold,
        "out_of_domain": estimate.out_of_domain,
        "warnings": list(estimate.warnings),
        "facts": pk_facts(estimate),
    }


def summary(estimate: ExposureEstimate) -> str:
    """A short human-readable report."""
    band = estimate.trough_interval
    lines = [
        f"model {estimate.model_name}; method {estimate.method}; CL {estimate.cl_l_h:.2f} L/h, V {estimate.v_l:.0f} L",
        f"steady-state trough at {format_number(estimate.regimen.dose_mg)} mg "
        f"q{format_number(estimate.regimen.interval_h)}h: "
        f"{estimate.cmin_pred_ng_ml:.0f} ng/mL"
        + (f" (5-95 %: {band.p05:.0f}-{band.p95:.0f}, parameter uncertainty)" if band else ""),
    ]
    if estimate.cmin_next_ng_ml is not None and estimate.next_dose_time is not None:
        lines.append(
            f"trough before the next dose ({estimate.next_dose_time:%Y-%m-%d %H:%M %Z}), given the real history: "
            f"{estimate.cmin_next_ng_ml:.0f} ng/mL"
        )
    if estimate.p_target is not None:
        lines.append(f"P(trough >= {format_number(estimate.target_ng_ml)} ng/mL) = {estimate.p_target:.2f}")
    if estimate.loglinear:
        flag = "" if estimate.loglinear.reliable else f" [unreliable: {estimate.loglinear.reason}]"
        lines.append(f"log-linear (Wang 2009) trough: {estimate.loglinear.cmin_ng_ml:.0f} ng/mL{flag}")
    for row in estimate.dose_table:
        lines.append(
            f"  {row.daily_mg:4.0f} mg/day ({format_number(row.dose_mg)} mg q{format_number(row.interval_h)}h): median "
            f"{row.cmin_median_ng_ml:5.0f} [{row.cmin_p05_ng_ml:.0f}-{row.cmin_p95_ng_ml:.0f}] "
            f"P(target) {row.p_target:.2f}"
        )
    proposed = estimate.proposed_daily_mg
    lines.append(
        f"proposed: {format_number(proposed)} mg/day"
        if proposed is not None
        else "proposed: none reaches the threshold"
    )
    lines += [f"WARNING: {w}" for w in estimate.warnings]
    return "\n".join(lines)


def _short_line(result: dict[str, Any]) -> str:
    return f"{result['method']}: trough {result['cmin_pred']:.0f} ng/mL, P(target) {result['p_target']}"
