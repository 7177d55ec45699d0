"""Rules in words for the committee's review page: conditions and effects with every fact named by its label and
every ``policy.*`` value resolved (value, unit, evidence level), as the rule set loaded them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds.engine.model import Rule
from cds.engine.policy import Policy
from cds.engine.render import PLACEHOLDER
from cds.engine.vocabulary import Vocabulary
from cds.numbers import format_number

_COMPARE = {"lt": "is below", "lte": "is at most", "gt": "is above", "gte": "is at least", "eq": "is", "ne": "is not"}
_UNITS = {"d": "days", "h": "h", "a": "years", "wk": "weeks", "1": ""}
POLICY_PREFIX = "policy."
_POLICY_NAME = re.compile(r"\bpolicy\.([a-z][a-z0-9_]*)")


@dataclass(frozen=True)
class PolicyValue:
    name: str
    shown: str  # "1000 ng/mL"
    level: str
    evidence: str
    note: str


@dataclass(frozen=True)
class Condition:
    """A rule's `when` in words: ``joiner`` ("all" or "any") over ``clauses``, each a sentence."""

    joiner: str
    clauses: tuple[str, ...]


class Wording:
    def __init__(self, vocabulary: Vocabulary, policy: Policy) -> None:
        self.vocabulary = vocabulary
        self.policy = policy

    # --- values ------------------------------------------------------------------------------------------

    def policy_value(self, name: str) -> PolicyValue | None:
        param = self.policy.parameters.get(name)
        if param is None:
            return None
        return PolicyValue(name, shown_value(param.value), param.level, " ".join(param.evidence.split()), param.note)

    def fact(self, name: str) -> str:
        """A fact in words: its label, else its description up to the first bracket, semicolon or colon."""
        spec = self.vocabulary.facts.get(name)
        if spec is None:
            return name
        words = spec.label or re.split(r" \(|;|: ", spec.description, maxsplit=1)[0].strip() or spec.display_name
        return f"{words} ({name})"

    def operand(self, value: Any) -> str:
        """A threshold or comparison value: a policy parameter resolved, a fact by its label, else the literal."""
        if isinstance(value, str) and value.startswith(POLICY_PREFIX):
            resolved = self.policy_value(value.removeprefix(POLICY_PREFIX))
            if resolved is not None:
                return f"{resolved.shown} [{value}, {resolved.level}]"
            return f"{value} (not in the policy)"
        if isinstance(value, str) and value in self.vocabulary.facts:
            return self.fact(value)
        return literal(value)

    def text(self, template: str) -> str:
        """Card text with its placeholders: a policy value resolved, a fact as [its label]."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith(POLICY_PREFIX):  # as a card shows it: the number (the text gives the unit)
                param = self.policy.parameters.get(name.removeprefix(POLICY_PREFIX))
                if param is None:
                    return match.group(0)
                value = param.value
                return format_number(float(value.value)) if hasattr(value, "unit") else shown_value(value)
            spec = self.vocabulary.facts.get(name)
            return f"[{spec.display_name}]" if spec is not None else match.group(0)

        return PLACEHOLDER.sub(replace, " ".join(template.split()))

    # --- conditions ----------------------------------------------------------------------------------------

    def condition(self, raw: Any) -> Condition:
        """The top level as a list of clauses (all of / any of); nested groups inline, in parentheses."""
        if isinstance(raw, Mapping) and len(raw) == 1:
            ((op, arg),) = raw.items()
            if op in ("all", "any") and isinstance(arg, list):
                return Condition(op, tuple(self.clause(item) for item in arg))
        return Condition("all", (self.clause(raw),))

    def clause(self, raw: Any) -> str:
        if not isinstance(raw, Mapping) or len(raw) != 1:
            return str(raw)
        ((op, arg),) = raw.items()
        if op in ("all", "any"):
            joined = (" and " if op == "all" else " or ").join(self.clause(item) for item in arg)
            return f"({joined})" if len(arg) > 1 else joined
        if op == "not":
            return f"not: {self.clause(arg)}"
        if op == "present":
            return f"{self.fact(arg)} is known"
        if op == "missing":
            return f"{self.fact(arg)} is not known"
        if op == "in":
            return f"{self.fact(arg[0])} is one of {', '.join(self.operand(v) for v in arg[1])}"
        if op == "between":
            return f"{self.fact(arg[0])} is at least {self.operand(arg[1])} and below {self.operand(arg[2])}"
        if op == "censored":
            if isinstance(arg, str):
                return f"{self.fact(arg)} is reported only as a bound (such as <0.10)"
            return f"{self.fact(arg[0])} is reported {arg[1]} a limit of the assay"
        if op in ("eq", "ne") and isinstance(arg[1], bool):
            return f"{self.fact(arg[0])}: {'yes' if arg[1] == (op == 'eq') else 'no'}"
        if op in _COMPARE:
            return f"{self.fact(arg[0])} {_COMPARE[op]} {self.operand(arg[1])}"
        return f"{op}: {arg}"

    # --- effects -------------------------------------------------------------------------------------------

    def effects(self, rule: Rule) -> tuple[str, ...]:
        parts: list[str] = []
        if rule.card is not None:
            parts.append(f"Shows a {rule.card.indicator} card: “{self.text(rule.card.summary)}”")
            parts += [f"Offers the suggestion “{self.text(s.label)}”" for s in rule.card.suggestions]
        if rule.dose is not None:
            parts.append(self.dose(rule))
        for derivation in rule.derive:
            if derivation.from_fact is not None:
                parts.append(f"Takes {self.fact(derivation.fact)} from {self.fact(derivation.from_fact)}")
            else:
                parts.append(f"Sets {self.fact(derivation.fact)} to {self.valued(derivation.fact, derivation.value)}")
        return tuple(parts) or ("Nothing shown; the rule only records that it applies",)

    def dose(self, rule: Rule) -> str:
        d = rule.dose
        assert d is not None
        base = self.fact(d.of) if d.of else "the current dose"
        words = [
            "withhold imatinib" if d.withhold else "",
            f"{format_number(d.factor * 100)}% of {base}" if d.factor is not None else "",
            f"{abs(d.step)} step{'s' if abs(d.step) != 1 else ''} {'down' if d.step < 0 else 'up'} the dose ladder "
            f"from {base}"
            if d.step is not None
            else "",
            f"set to {format_number(d.set_daily_mg)} mg/day" if d.set_daily_mg is not None else "",
            f"at most {format_number(d.max_daily_mg)} mg/day" if d.max_daily_mg is not None else "",
            f"never above {self.operand(d.max_of)}" if d.max_of is not None else "",
        ]
        text = "Dose: " + ", ".join(w for w in words if w)
        return text + (f" ({' '.join(d.reason.split())})" if d.reason else "")

    def valued(self, fact: str, value: Any) -> str:
        spec = self.vocabulary.facts.get(fact)
        unit = _UNITS.get(spec.unit, spec.unit) if spec is not None and spec.unit else ""
        shown = literal(value)
        return f"{shown} {unit}".strip() if isinstance(value, int | float) and not isinstance(value, bool) else shown


def policy_names(source: Any) -> set[str]:
    """Every ``policy.<name>`` a rule as written refers to (conditions, effects and card text)."""
    found: set[str] = set()
    if isinstance(source, str):
        found.update(_POLICY_NAME.findall(source))
    elif isinstance(source, Mapping):
        for value in source.values():
            found |= policy_names(value)
    elif isinstance(source, Sequence):
        for value in source:
            found |= policy_names(value)
    return found


def shown_value(value: Any) -> str:
    """A policy value as a reader writes it: "1000 ng/mL", "7 days", "100, 200, 300 mg"."""
    if hasattr(value, "unit") and hasattr(value, "value"):
        unit = _UNITS.get(str(value.unit), str(value.unit))
        return f"{format_number(float(value.value))} {unit}".strip()
    if isinstance(value, list):
        return ", ".join(shown_value(v) for v in value)
    return literal(value)


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_number(value)
    return str(value)
