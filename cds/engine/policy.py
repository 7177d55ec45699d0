"""Local policy (rules/policy.yaml): the judgement thresholds a pharmacist may change without editing rules.

Rules refer to a parameter as ``policy.<name>`` wherever a threshold or a derived value may stand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds.engine.yamlpos import safe_load
from cds.errors import RuleError
from cds.units import Quantity, UnitError, parse_quantity

POLICY_PREFIX = "policy."


@dataclass(frozen=True)
class PolicyParameter:
    name: str
    value: Any  # a Quantity for "1000 ng/mL", else the YAML value
    evidence: str
    level: str
    note: str = ""


@dataclass(frozen=True)
class Policy:
    id: str
    version: str
    jurisdiction: str
    parameters: Mapping[str, PolicyParameter]
    change_log: tuple[Mapping[str, Any], ...] = ()  # as in rule files: version, date, change, why

    def quantity(self, name: str) -> Quantity:
        value = self.parameters[name].value
        if isinstance(value, Quantity):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Quantity(float(value), "1")
        raise RuleError(f"policy parameter {name!r} is not a quantity")

    def get(self, name: str, default: Any = None) -> Any:
        param = self.parameters.get(name)
        return default if param is None else param.value


EMPTY_POLICY = Policy("none", "0.0.0", "none", {})


def load_policy(path: Path) -> Policy:
    if not path.exists():
        return EMPTY_POLICY
    try:
        raw = safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read the policy: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("parameters"), dict):
        raise RuleError(f"{path}: expected a mapping with 'parameters'")
    params = {name: _parameter(path, name, body) for name, body in raw["parameters"].items()}
    version = str(raw.get("version", ""))
    log = _change_log(path, raw.get("change_log"), version)
    return Policy(str(raw.get("id", "")), version, str(raw.get("jurisdiction", "")), params, log)


def _change_log(path: Path, raw: Any, version: str) -> tuple[Mapping[str, Any], ...]:
    """Like a rule file's: a list of {version, date, change, why}, with an entry for the current version."""
    fix = "add change_log: [{version, date, change, why}] with an entry for every version, as in rule files"
    if not isinstance(raw, list) or not all(
        isinstance(e, dict) and {"version", "date", "change"} <= set(e) for e in raw
    ):
        raise RuleError(f"{path}: change_log is missing or incomplete: {fix}")
    if version not in {str(e["version"]) for e in raw}:
        raise RuleError(f"{path}: version {version} has no change_log entry: {fix}")
    return tuple(raw)


def _parameter(path: Path, name: str, body: Any) -> PolicyParameter:
    if not isinstance(body, dict) or "value" not in body or "evidence" not in body or "level" not in body:
        raise RuleError(f"{path}: parameter {name!r} needs value, evidence and level")
    value = body["value"]
    if isinstance(value, str):
        try:
            value = parse_quantity(value)
        except UnitError:
            pass  # a code or text value
    return PolicyParameter(name, value, str(body["evidence"]), str(body["level"]), str(body.get("note", "")))
