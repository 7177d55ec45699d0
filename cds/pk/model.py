"""Population PK models as data: a YAML file in ``rules/models/`` loaded into an immutable ``PkModel``.

File format (see ``rules/models/imatinib-widmer2006.yaml``)::

    name, drug, citation, structure: one-compartment-first-order-absorption, bioavailability
    covariates: {NAME: {unit, domain: [lo, hi]?, plausible: [lo, hi]?, default?}}
    parameters: {CL|V|KA: {typical, unit, additive: [EFFECT], multiplicative: [EFFECT]}}
    variability: {parameters: [CL, V], sd: [..], correlation: [[..], [..]]}
    residual_error: {proportional, additive_ng_ml}

Covariate equations are declarative, never evaluated code. A typical value is
``(typical + sum(additive terms)) * prod(multiplicative factors)`` with

* additive ``{covariate, center, scale, coefficient}``: ``coefficient * (x - center) / scale``;
* multiplicative ``{covariate, form: power, reference, exponent}``: ``(x / reference) ** exponent``;
* multiplicative ``{covariate, form: linear, center, scale, coefficient}``: ``1 + coefficient * (x - center) / scale``.

Known covariate names: ``weight_kg``, ``age_y``, ``male`` (1 male, 0 female, 0.5 unknown), ``gist``
(1 GIST, 0 CML), ``agp_g_l`` and ``albumin_g_l``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cds.errors import EstimationError
from cds.numbers import format_number
from cds.shipped import shipped_rules

MODELS_DIR = shipped_rules() / "models"
PARAMETERS = ("CL", "V", "KA")
KNOWN_COVARIATES = ("weight_kg", "age_y", "male", "gist", "agp_g_l", "albumin_g_l")
STRUCTURES = ("one-compartment-first-order-absorption",)


@dataclass(frozen=True)
class CovariateSpec:
    name: str
    unit: str
    domain: tuple[float, float] | None = None
    plausible: tuple[float, float] | None = None
    default: float | None = None


@dataclass(frozen=True)
class CovariateEffect:
    """One term of a covariate equation; ``form`` is ``additive``, ``power`` or ``linear``."""

    covariate: str
    form: str
    center: float = 0.0
    scale: float = 1.0
    coefficient: float = 0.0
    reference: float = 1.0
    exponent: float = 0.0

    def term(self, x: float) -> float:
        if self.form == "power":
            return float((x / self.reference) ** self.exponent)
        shift = self.coefficient * (x - self.center) / self.scale
        return 1.0 + shift if self.form == "linear" else shift


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    typical: float
    unit: str
    additive: tuple[CovariateEffect, ...] = ()
    multiplicative: tuple[CovariateEffect, ...] = ()

    def typical_value(self, covariates: Mapping[str, float]) -> float:
        value = self.typical + sum(e.term(covariates[e.covariate]) for e in self.additive)
        for effect in self.multiplicative:
            value *= effect.term(covariates[effect.covariate])
        return value


@dataclass(frozen=True)
class PkModel:
    """An immutable population model; ``omega`` is the full covariance of ``eta_parameters``."""

    name: str
    drug: str
    citation: str
    structure: str
    bioavailability: float
    covariates: tuple[CovariateSpec, ...]
    parameters: tuple[ParameterSpec, ...]
    eta_parameters: tuple[str, ...]
    omega: tuple[tuple[float, ...], ...]
    sigma_prop: float
    sigma_add_ng_ml: float
    source: str = ""

    def parameter(self, name: str) -> ParameterSpec:
        return next(p for p in self.parameters if p.name == name)

    def omega_matrix(self) -> np.ndarray:
        return np.array(self.omega, dtype=float)

    def eta_columns(self) -> list[int]:
        """Index into (CL, V, KA) of each eta."""
        return [PARAMETERS.index(name) for name in self.eta_parameters]


def apply_etas(model: PkModel, log_values: np.ndarray, etas: np.ndarray) -> np.ndarray:
    """exp(log typical + eta) as (..., 3) columns CL, V, ka for etas of shape (..., n_eta).

    Element-wise on purpose: a BLAS matmul on thousands of draws wakes OpenBLAS threads whose
    spinning slows the small optimiser calls that follow on a 2-core machine.
    """
    etas = np.asarray(etas, dtype=float)
    if etas.ndim == 1:  # one eta vector (a fit's): a plain copy, broadcast_to costs more than the rest
        logs = np.array(log_values, dtype=float)
    else:
        logs = np.broadcast_to(log_values, (*etas.shape[:-1], len(PARAMETERS))).copy()
    for eta_index, column in enumerate(model.eta_columns()):
        logs[..., column] += etas[..., eta_index]
    return np.asarray(np.exp(logs))


def load_model(name_or_path: str | Path) -> PkModel:
    """Load a population PK model by name (a file in ``rules/models/``) or by path.

    Parameters
    ----------
    name_or_path : str or Path
        ``"imatinib-widmer2006"`` or a path to a YAML model file.

    Returns
    -------
    PkModel
        The validated, immutable model.

    Raises
    ------
    EstimationError
        When the file is missing or does not follow the format.

    Examples
    --------
    >>> model = load_model("imatinib-widmer2006")
    >>> model.eta_parameters, round(model.omega[0][1], 4)
    (('CL', 'V'), 0.1787)
    """
    path = _model_path(name_or_path)
    try:
        version = path.stat().st_mtime_ns
    except OSError as exc:
        raise EstimationError(f"cannot read PK model {str(name_or_path)!r}: {exc}") from exc
    return _load_version(path.absolute(), version)


@functools.lru_cache(maxsize=32)
def _model_path(name_or_path: str | Path) -> Path:
    """The file a model name or path stands for (no file system access, so it can be remembered)."""
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") else MODELS_DIR / f"{name_or_path}.yaml"


@functools.lru_cache(maxsize=32)
def _load_version(path: Path, version: int) -> PkModel:
    """The absolute path is resolved (symlinks; about 17 us a call) only when it or its file's mtime is new."""
    return _load_file(path.resolve(), version)


@functools.lru_cache(maxsize=16)
def _load_file(path: Path, version: int) -> PkModel:
    """Models are immutable: each file is read and checked once per process (again if it changes)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EstimationError(f"cannot read PK model {str(path)!r}: {exc}") from exc
    try:
        return _parse_model(raw, str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise EstimationError(f"invalid PK model file {path}: {exc}") from exc


def _parse_model(raw: Any, source: str) -> PkModel:
    if not isinstance(raw, dict):
        raise ValueError("expected a mapping at the top level")
    covariates = tuple(_parse_covariate(n, c) for n, c in raw["covariates"].items())
    parameters = tuple(_parse_parameter(n, raw["parameters"][n]) for n in PARAMETERS)
    if set(raw["parameters"]) != set(PARAMETERS):
        raise ValueError(f"parameters must be exactly {PARAMETERS}, got {sorted(raw['parameters'])}")
    if raw["structure"] not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {raw['structure']!r}")
    variability = raw["variability"]
    etas = tuple(str(p) for p in variability["parameters"])
    omega = _omega(etas, variability["sd"], variability["correlation"])
    residual = raw["residual_error"]
    model = PkModel(
        name=str(raw["name"]),
        drug=str(raw["drug"]),
        citation=str(raw["citation"]),
        structure=str(raw["structure"]),
        bioavailability=_positive(raw.get("bioavailability", 1.0), "bioavailability"),
        covariates=covariates,
        parameters=parameters,
        eta_parameters=etas,
        omega=omega,
        sigma_prop=float(residual.get("proportional", 0.0)),
        sigma_add_ng_ml=float(residual.get("additive_ng_ml", 0.0)),
        source=source,
    )
    _check_references(model)
    return model


def _parse_covariate(name: str, raw: dict[str, Any]) -> CovariateSpec:
    if name not in KNOWN_COVARIATES:
        raise ValueError(f"unknown covariate {name!r}; known: {KNOWN_COVARIATES}")
    return CovariateSpec(
        name=name,
        unit=str(raw["unit"]),
        domain=_range(raw.get("domain"), f"{name}.domain"),
        plausible=_range(raw.get("plausible"), f"{name}.plausible"),
        default=None if raw.get("default") is None else float(raw["default"]),
    )


def _parse_parameter(name: str, raw: dict[str, Any]) -> ParameterSpec:
    additive = tuple(_parse_effect(e, additive=True) for e in raw.get("additive", ()))
    multiplicative = tuple(_parse_effect(e, additive=False) for e in raw.get("multiplicative", ()))
    return ParameterSpec(
        name=name,
        typical=_positive(raw["typical"], f"{name}.typical"),
        unit=str(raw["unit"]),
        additive=additive,
        multiplicative=multiplicative,
    )


def _parse_effect(raw: dict[str, Any], *, additive: bool) -> CovariateEffect:
    form = "additive" if additive else str(raw.get("form", ""))
    allowed = {
        "additive": {"covariate", "center", "scale", "coefficient"},
        "linear": {"covariate", "form", "center", "scale", "coefficient"},
        "power": {"covariate", "form", "reference", "exponent"},
    }
    if form not in allowed:
        raise ValueError(f"multiplicative effect form must be 'power' or 'linear', got {form!r}")
    if set(raw) != allowed[form]:
        raise ValueError(f"effect on {raw.get('covariate')!r} needs exactly the keys {sorted(allowed[form])}")
    fields = {k: float(v) for k, v in raw.items() if k not in ("covariate", "form")}
    if fields.get("scale", 1.0) == 0.0 or fields.get("reference", 1.0) <= 0.0:
        raise ValueError(f"effect on {raw['covariate']!r}: scale must be non-zero, reference positive")
    return CovariateEffect(covariate=str(raw["covariate"]), form=form, **fields)


def _omega(etas: tuple[str, ...], sd: list[float], corr: list[list[float]]) -> tuple[tuple[float, ...], ...]:
    sd_arr = np.array(sd, dtype=float)
    corr_arr = np.array(corr, dtype=float)
    n = len(etas)
    if len(set(etas)) != n or not set(etas) <= set(PARAMETERS):
        raise ValueError(f"variability.parameters must be distinct names from {PARAMETERS}, got {etas}")
    if sd_arr.shape != (n,) or corr_arr.shape != (n, n) or np.any(sd_arr <= 0):
        raise ValueError("variability.sd must hold one positive value per parameter and correlation be n x n")
    if not np.allclose(corr_arr, corr_arr.T) or not np.allclose(np.diag(corr_arr), 1.0):
        raise ValueError("variability.correlation must be symmetric with a unit diagonal")
    omega = sd_arr[:, None] * corr_arr * sd_arr[None, :]
    if np.any(np.linalg.eigvalsh(omega) <= 0):
        raise ValueError("the covariance matrix built from sd and correlation is not positive definite")
    return tuple(tuple(float(x) for x in row) for row in omega)


def _check_references(model: PkModel) -> None:
    declared = {c.name for c in model.covariates}
    for parameter in model.parameters:
        for effect in (*parameter.additive, *parameter.multiplicative):
            if effect.covariate not in declared:
                raise ValueError(f"{parameter.name} uses undeclared covariate {effect.covariate!r}")
    if model.sigma_prop < 0 or model.sigma_add_ng_ml < 0 or model.sigma_prop + model.sigma_add_ng_ml == 0:
        raise ValueError("residual_error needs a non-negative proportional and additive part, not both zero")


def _range(raw: Any, what: str) -> tuple[float, float] | None:
    if raw is None:
        return None
    low, high = (float(x) for x in raw)
    if not low < high:
        raise ValueError(f"{what}: expected [low, high] with low < high, got {raw}")
    return (low, high)


def _positive(raw: Any, what: str) -> float:
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive number, got {raw!r}")
    return value


@dataclass(frozen=True)
class TypicalValues:
    """Covariate-adjusted typical parameters and what was noticed while computing them."""

    cl_l_h: float
    v_l: float
    ka_per_h: float
    out_of_domain: bool
    warnings: tuple[str, ...]

    def log_values(self) -> np.ndarray:
        return np.log([self.cl_l_h, self.v_l, self.ka_per_h])


def typical_values(model: PkModel, covariates: Mapping[str, float]) -> TypicalValues:
    """Typical CL, V and ka for ``covariates``; flags values outside the model's validity domain.

    Missing covariates with a ``default`` use it (with a warning); implausible values raise.

    Examples
    --------
    >>> tv = typical_values(load_model("imatinib-widmer2006"),
    ...                     {"weight_kg": 70, "age_y": 50, "male": 1, "gist": 0})
    >>> round(tv.cl_l_h, 3), round(tv.v_l, 1), tv.out_of_domain
    (16.596, 393.2, False)
    """
    values: dict[str, float] = {}
    warnings: list[str] = []
    out_of_domain = False
    for spec in model.covariates:
        value, note = _covariate_value(spec, covariates)
        values[spec.name] = value
        if note:
            warnings.append(note)
        if spec.domain is not None and not spec.domain[0] <= value <= spec.domain[1]:
            out_of_domain = True
            warnings.append(
                f"{spec.name} = {format_number(value)} {spec.unit} is outside the validity domain "
                f"[{format_number(spec.domain[0])}, {format_number(spec.domain[1])}] of {model.name}"
            )
    cl, v, ka = (model.parameter(p).typical_value(values) for p in PARAMETERS)
    for name, value in zip(PARAMETERS, (cl, v, ka), strict=True):
        if not (math.isfinite(value) and value > 0):
            raise EstimationError(f"typical {name} of {model.name} is {format_number(value)} for these covariates")
    return TypicalValues(cl, v, ka, out_of_domain, tuple(warnings))


def _covariate_value(spec: CovariateSpec, covariates: Mapping[str, float]) -> tuple[float, str]:
    if spec.name not in covariates:
        if spec.default is None:
            raise EstimationError(f"model covariate `{spec.name}` is required, got no value")
        return spec.default, f"{spec.name} unknown; the model's reference value {format_number(spec.default)} was used"
    value = float(covariates[spec.name])
    if not math.isfinite(value) or (spec.plausible is not None and not spec.plausible[0] <= value <= spec.plausible[1]):
        bounds = (
            f"within [{format_number(spec.plausible[0])}, {format_number(spec.plausible[1])}]"
            if spec.plausible
            else "finite"
        )
        raise EstimationError(f"Invalid `{spec.name}`: got {format_number(value)} {spec.unit}, must be {bounds}")
    return value, ""
