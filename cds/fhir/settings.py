"""Local mapping policy from rules/mapping.yaml (maximum ages, ULN fallbacks, Cockcroft-Gault, look-backs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds.errors import RuleError
from cds.fhir.values import COMMA_RULES
from cds.numbers import format_number
from cds.shipped import shipped_rules

RULES_DIR = shipped_rules()


@dataclass(frozen=True)
class Uln:
    value: float
    unit: str


@dataclass(frozen=True)
class MappingSettings:
    max_age_days: Mapping[str, float] = field(default_factory=dict)
    uln_fallback: Mapping[str, Uln] = field(default_factory=dict)
    cockcroft_gault: bool = True
    cg_creatinine_max_age_days: float = 7
    cg_weight_max_age_days: float = 30
    egfr_as_crcl: bool = False  # rules/mapping.yaml switches it on (local policy)
    egfr_deindex_by_bsa: bool = True
    cg_min_age_years: float = 18
    new_start_lookback_days: float = 90
    dose_history_days: float = 60
    ae_observation_max_age_days: float = 30
    weight_gain_window_days: float = 7
    observation_statuses: frozenset[str] = frozenset({"final", "amended", "corrected", "preliminary"})
    cml_phase_codes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    cml_phase_words: Mapping[str, str] = field(default_factory=dict)
    comma_before_three_digits: str = "thousands"  # how a valueString "1,200" is read (cds/fhir/values.py)
    # policy.yaml parameters that read a severity (mild/moderate/severe, serious) as a CTCAE grade; a severity
    # without one is not a grade (the event is then reported as ungraded)
    severity_grades: Mapping[str, int] = field(default_factory=dict)
    # value sets of drugs that interact with imatinib: a draft of one of them makes an order hook relevant
    relevance_interacting_value_sets: tuple[str, ...] = ()


SEVERITY_GRADE_PARAMETERS = (
    "severity_mild_grade",
    "severity_moderate_grade",
    "severity_severe_grade",
    "ae_serious_grade",
)


def load_settings(path: Path | None = None) -> MappingSettings:
    path = path or RULES_DIR / "mapping.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return _settings(raw, _severity_grades(path.parent / "policy.yaml"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RuleError(f"{path}: invalid mapping settings: {exc}") from exc


def _severity_grades(path: Path) -> dict[str, int]:
    """The severity-to-grade parameters of the policy next to mapping.yaml (none when there is no policy)."""
    if not path.exists():
        return {}
    parameters = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("parameters") or {}
    found = {name: parameters[name]["value"] for name in SEVERITY_GRADE_PARAMETERS if name in parameters}
    for name, value in found.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5:
            raise ValueError(f"{path}: {name} must be a CTCAE grade 0-5, not {value!r}")
    return found


def _settings(raw: dict[str, Any], severity_grades: Mapping[str, int] | None = None) -> MappingSettings:
    cg = raw.get("cockcroft_gault", {})
    if cg.get("weight", "actual") != "actual":
        raise ValueError("cockcroft_gault.weight: only 'actual' body weight is implemented")
    settings = _read(raw, cg, severity_grades or {})
    oldest_level = settings.max_age_days.get("level.conc")
    if oldest_level is not None and settings.dose_history_days <= oldest_level:
        # a level older than the dose history has no dose before it: "record the dose time" for a recorded dose
        raise ValueError(
            f"dose_history_days ({format_number(settings.dose_history_days)}) must reach past the oldest accepted "
            f"level (max_age_days level.conc {format_number(oldest_level)}) by the doses before it"
        )
    return settings


def _read(raw: dict[str, Any], cg: dict[str, Any], severity_grades: Mapping[str, int]) -> MappingSettings:
    egfr = raw.get("egfr_as_crcl", {})
    return MappingSettings(
        max_age_days={str(k): float(v) for k, v in raw.get("max_age_days", {}).items()},
        uln_fallback={k: Uln(float(v["value"]), str(v["unit"])) for k, v in raw.get("uln_fallback", {}).items()},
        cockcroft_gault=bool(cg.get("enabled", True)),
        cg_creatinine_max_age_days=float(cg.get("creatinine_max_age_days", 7)),
        cg_weight_max_age_days=float(cg.get("weight_max_age_days", 30)),
        egfr_as_crcl=bool(egfr.get("enabled", False)),
        egfr_deindex_by_bsa=bool(egfr.get("deindex_by_bsa", True)),
        cg_min_age_years=float(cg.get("min_age_years", 18)),
        new_start_lookback_days=float(raw.get("new_start_lookback_days", 90)),
        dose_history_days=float(raw.get("dose_history_days", 60)),
        ae_observation_max_age_days=float(raw.get("ae_observation_max_age_days", 30)),
        weight_gain_window_days=float(raw.get("weight_gain_window_days", 7)),
        observation_statuses=frozenset(raw.get("observation_statuses", ["final", "amended", "corrected"])),
        cml_phase_codes={
            (str(c["system"]), str(c["code"])): phase
            for phase, codes in raw.get("cml_phase_codes", {}).items()
            for c in codes
        },
        cml_phase_words={
            str(w).lower(): phase for phase, words in raw.get("cml_phase_words", {}).items() for w in words
        },
        comma_before_three_digits=_comma_rule(raw.get("number_format", {})),
        severity_grades=dict(severity_grades),
        relevance_interacting_value_sets=tuple(
            str(name) for name in (raw.get("relevance") or {}).get("interacting_value_sets", [])
        ),
    )


def _comma_rule(raw: dict[str, Any]) -> str:
    rule = str(raw.get("comma_before_three_digits", "thousands"))
    if rule not in COMMA_RULES:
        raise ValueError(f"number_format.comma_before_three_digits: {rule!r} is not one of {', '.join(COMMA_RULES)}")
    return rule
