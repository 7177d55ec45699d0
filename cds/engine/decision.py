"""What one evaluation decided, with everything a reviewer needs to see why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cds.engine.compose import DoseDecision
from cds.engine.conditions import FactValue
from cds.engine.model import Evidence, Suggestion


@dataclass(frozen=True)
class FiredRule:
    rule_id: str
    title: str
    ruleset_id: str
    ruleset_version: str
    stage: int
    facts_used: Mapping[str, FactValue | None]  # None = the rule asked about it and it was absent
    derived: Mapping[str, FactValue] = field(default_factory=dict)  # facts this rule set for later rules


@dataclass(frozen=True)
class SuppressedRule:
    """A rule whose condition held but that the scope stage kept from acting (e.g. adult dosing in a child)."""

    rule_id: str
    because: str  # the scope fact that stopped it, e.g. "scope.no_dose_advice"
    scope_rules: tuple[str, ...]  # the scope rules that derived that fact


@dataclass(frozen=True)
class CardSpec:
    rule_id: str
    indicator: str
    summary: str
    detail: str
    suggestions: tuple[Suggestion, ...]
    evidence: tuple[Evidence, ...]
    ruleset_id: str
    ruleset_version: str
    topic: str  # the card's clinical problem, one of schema.CARD_TOPICS (required in every rule's card)


@dataclass(frozen=True)
class Decision:
    hook: str
    ruleset_digest: str
    ruleset_version: str
    facts: Mapping[str, FactValue]  # input facts after checks, plus derived ones
    derived: Mapping[str, FactValue]
    fired: tuple[FiredRule, ...]
    dose: DoseDecision
    cards: tuple[CardSpec, ...]
    warnings: tuple[str, ...]
    suppressed: tuple[SuppressedRule, ...] = ()

    @property
    def fired_ids(self) -> tuple[str, ...]:
        return tuple(f.rule_id for f in self.fired)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
