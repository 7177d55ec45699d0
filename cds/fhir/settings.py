"""Local mapping policy from rules/mapping.yaml (maximum ages, ULN fallbacks, Cockcroft-Gault, look-backs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds.errors import RuleError
from cds.fhir.values import COMMA_RULES

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


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
    new_start_lookback_days: float = 90
    dose_history_days: float = 60
    ae_observation_max_age_days: float = 30
    weight_gain_window_days: float = 7
    observation_statuses: frozenset[str] = frozenset({"final", "amended", "corrected", "preliminary"})
    cml_phase_codes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    cml_phase_words: Mapping[str, str] = field(default_factory=dict)
    comma_before_three_digits: str = "thousands"  # how a valueString "1,200" is read (cds/fhir/values.py)


def load_settings(path: Path | None = None) -> MappingSettings:
    path = path or RULES_DIR / "mapping.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return _settings(raw)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RuleError(f"{path}: invalid mapping settings: {exc}") from exc


def _settings(raw: dict[str, Any]) -> MappingSettings:
    cg = raw.get("cockcroft_gault", {})
    if cg.get("weight", "actual") != "actual":
        raise ValueError("cockcroft_gault.weight: only 'actual' body weight is implemented")
    return MappingSettings(
        max_age_days={str(k): float(v) for k, v in raw.get("max_age_days", {}).items()},
        uln_fallback={k: Uln(float(v["value"]), str(v["unit"])) for k, v in raw.get("uln_fallback", {}).items()},
        cockcroft_gault=bool(cg.get("enabled", True)),
        cg_creatinine_max_age_days=float(cg.get("creatinine_max_age_days", 7)),
        cg_weight_max_age_days=float(cg.get("weight_max_age_days", 30)),
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
    )


def _comma_rule(raw: dict[str, Any]) -> str:
    rule = str(raw.get("comma_before_three_digits", "thousands"))
    if rule not in COMMA_RULES:
        raise ValueError(f"number_format.comma_before_three_digits: {rule!r} is not one of {', '.join(COMMA_RULES)}")
    return rule
