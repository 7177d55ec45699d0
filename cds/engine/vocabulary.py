"""The fact vocabulary (rules/facts.yaml): names, types, canonical units and plausible ranges."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from cds.engine.conditions import CENSOR_SIDES, CENSOR_SUFFIX
from cds.engine.yamlpos import safe_load
from cds.errors import RuleError
from cds.numbers import format_number
from cds.units import UnitError, canonical_unit

FACT_TYPES = ("number", "boolean", "code", "date")
FACT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

FactValue = float | bool | str


@dataclass(frozen=True)
class FactSpec:
    name: str
    type: str
    description: str
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] | None = None
    max_age_days: float | None = None
    derived: bool = False
    molar_mass_g_mol: float | None = None
    censorable: bool = False  # may arrive as a bound ("<0.10"); its companion ``<name>_censored`` says the side
    label: str | None = None  # what a card calls it ("Creatinine clearance"); facts.yaml `labels:`

    @property
    def display_name(self) -> str:
        """The label, else the first words of the description (never the internal name)."""
        if self.label:
            return self.label
        words = re.split(r"[(:;,]| that | which | from ", self.description, maxsplit=1)[0].split()
        return " ".join(words[:6]) or "value"

    def accepts(self, value: object) -> bool:
        """Whether ``value`` has this fact's type and lies in its plausible range or value list."""
        if self.type == "boolean":
            return isinstance(value, bool)
        if self.type in ("code", "date"):
            return isinstance(value, str) and (self.values is None or value in self.values)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.low is not None and self.high is not None and self.low <= value <= self.high

    def expected(self) -> str:
        """What ``accepts`` takes, for messages: "[0, 10000] ng/mL" or the value list."""
        if self.type != "number":
            return str(list(self.values)) if self.values else self.type
        bounds = ", ".join("?" if b is None else format_number(b) for b in (self.low, self.high))
        return f"[{bounds}] {self.unit or ''}".rstrip()


@dataclass(frozen=True)
class Vocabulary:
    facts: Mapping[str, FactSpec]

    def __contains__(self, name: object) -> bool:
        return name in self.facts

    def __getitem__(self, name: str) -> FactSpec:
        return self.facts[name]


def load_vocabulary(path: Path) -> Vocabulary:
    try:
        raw = safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read the fact vocabulary: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("facts"), dict):
        raise RuleError(f"{path}: expected a mapping with a 'facts' mapping")
    specs = {name: _fact_spec(path, name, body) for name, body in raw["facts"].items()}
    specs |= _censoring(path, specs, raw.get("censorable", []))
    specs |= _labels(path, specs, raw.get("labels") or {})
    _check_prefixes(path, specs)
    return Vocabulary(specs)


def _fact_spec(path: Path, name: str, body: Any) -> FactSpec:
    where = f"{path}: fact {name!r}"
    if not isinstance(name, str) or not FACT_NAME.match(name):
        raise RuleError(f"{where}: names are lower-case dotted paths such as 'renal.crcl'")
    if not isinstance(body, dict) or body.get("type") not in FACT_TYPES:
        raise RuleError(f"{where}: 'type' must be one of {', '.join(FACT_TYPES)}")
    unit, low, high = None, None, None
    if body["type"] == "number":
        try:
            unit = canonical_unit(str(body.get("unit", "")))
        except UnitError as exc:
            raise RuleError(f"{where}: {exc}") from exc
        low, high = _range(where, body.get("range"))
    values = body.get("values")
    if values is not None and not all(isinstance(v, str) for v in values):
        # YAML reads bare yes/no/on/off as booleans: a code list must be text (quote them: ["yes", "no"])
        raise RuleError(f"{where}: every value must be text; quote YAML words such as yes/no: {values!r}")
    return FactSpec(
        name=name,
        type=body["type"],
        description=str(body.get("description", "")),
        unit=unit,
        low=low,
        high=high,
        values=tuple(values) if values is not None else None,
        max_age_days=body.get("max_age_days"),
        derived=bool(body.get("derived", False)),
        molar_mass_g_mol=body.get("molar_mass_g_mol"),
    )


def _censoring(path: Path, specs: dict[str, FactSpec], names: Any) -> dict[str, FactSpec]:
    """Mark the ``censorable`` number facts and declare each one's companion code fact."""
    if not isinstance(names, list):
        raise RuleError(f"{path}: 'censorable' must be a list of number facts")
    found: dict[str, FactSpec] = {}
    for name in names:
        spec = specs.get(name) if isinstance(name, str) else None
        if spec is None or spec.type != "number":
            raise RuleError(f"{path}: censorable {name!r} is not a number fact of this vocabulary")
        companion = name + CENSOR_SUFFIX
        if companion in specs:
            raise RuleError(f"{path}: {companion!r} is declared by hand; it is made for the censorable {name!r}")
        found[name] = replace(spec, censorable=True)
        description = f"{name} was reported only as a bound: the true value lies on this side of it"
        found[companion] = FactSpec(companion, "code", description, values=CENSOR_SIDES, derived=spec.derived)
    return found


def _labels(path: Path, specs: dict[str, FactSpec], labels: Any) -> dict[str, FactSpec]:
    """The `labels:` block: fact -> the short human name cards show for it."""
    if not isinstance(labels, dict):
        raise RuleError(f"{path}: 'labels' must map fact names to short labels")
    found: dict[str, FactSpec] = {}
    for name, label in labels.items():
        if name not in specs:
            raise RuleError(f"{path}: label for {name!r}, which is not a fact of this vocabulary")
        if not isinstance(label, str) or not label.strip() or len(label) > 60:
            raise RuleError(f"{path}: the label of {name!r} must be text of at most 60 characters")
        found[name] = replace(specs[name], label=label.strip())
    return found


def _range(where: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or value[0] > value[1]
    ):
        raise RuleError(f"{where}: number facts need 'range: [low, high]'")
    return float(value[0]), float(value[1])


def _check_prefixes(path: Path, specs: Mapping[str, FactSpec]) -> None:
    # The engine nests dotted names; 'a.b' and 'a.b.c' would collide in one document.
    names = set(specs)
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[:i]) in names:
                raise RuleError(f"{path}: fact {name!r} lies under fact {'.'.join(parts[:i])!r}")
