"""Card text templates: ``{fact.name}`` and ``{policy.name}`` placeholders, rendered for people."""

from __future__ import annotations

import re
from collections.abc import Mapping

from cds.engine.conditions import CENSOR_SUFFIX, FactValue
from cds.engine.policy import POLICY_PREFIX, Policy
from cds.engine.vocabulary import FactSpec, Vocabulary
from cds.numbers import format_number
from cds.units import Quantity

PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_.]*)\}")
CENSOR_SIGN = {"below": "<", "at-or-below": "<=", "above": ">", "at-or-above": ">="}  # a bound reads "<0.1"
OPEN_CODE_WIDTH = 40  # longest free-text code (e.g. a drug name) a summary must leave room for


def format_value(value: FactValue | Quantity) -> str:
    if isinstance(value, Quantity):
        value = value.value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return format_number(value)


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def render(template: str, values: Mapping[str, FactValue], policy: Policy) -> str:
    """Fill placeholders; a fact that is absent renders as 'unknown'."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith(POLICY_PREFIX):
            return format_value(policy.get(name[len(POLICY_PREFIX) :], "unknown"))
        if name not in values:
            return "unknown"
        side = values.get(name + CENSOR_SUFFIX)
        return CENSOR_SIGN.get(str(side), "") + format_value(values[name])

    return PLACEHOLDER.sub(fill, template)


def widest_values(vocabulary: Vocabulary) -> dict[str, FactValue]:
    """For each fact, the plausible value whose rendering is longest (checks summaries fit 139 chars)."""
    return {name: _widest(spec) for name, spec in vocabulary.facts.items()}


def _widest(spec: FactSpec) -> FactValue:
    if spec.type == "boolean":
        return False
    if spec.type == "date":
        return "2026-12-31"
    if spec.type == "code":
        return max(spec.values, key=len) if spec.values else "W" * OPEN_CODE_WIDTH
    low, high = spec.low or 0.0, spec.high or 0.0
    candidates = [low, high]
    for k in range(-2, 6):
        for sign in (1, -1):
            value = sign * (10**k - 10 ** (k - 3))
            if low <= value <= high:
                candidates.append(value)
    return max(candidates, key=lambda v: len(format_value(v)))
