"""Rule files as immutable objects, after the linter has accepted them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cds.engine.conditions import FactValue, Node


@dataclass(frozen=True)
class Evidence:
    citation: str
    level: str
    url: str = ""
    section: str = ""
    note: str = ""


@dataclass(frozen=True)
class Suggestion:
    label: str
    action: str  # apply-dose | order-level | withhold | none


@dataclass(frozen=True)
class CardTemplate:
    indicator: str
    summary: str
    topic: str  # the clinical problem the card is about (schema.CARD_TOPICS); cards on one topic become one card
    detail: str = ""
    suggestions: tuple[Suggestion, ...] = ()


@dataclass(frozen=True)
class DoseEffect:
    withhold: bool = False
    factor: float | None = None
    max_daily_mg: float | None = None
    set_daily_mg: float | None = None
    step: int | None = None
    reason: str = ""
    # the dose base the factor or step applies to (a fact such as regimen.standard_start_mg), never the draft
    of: str | None = None
    # a cap read from a fact (e.g. never above the dose before the hold)
    max_of: str | None = None


@dataclass(frozen=True)
class Derivation:
    fact: str
    value: FactValue | None = None  # a literal, already in the fact's canonical unit
    from_fact: str | None = None  # or a copy of another fact's value


@dataclass(frozen=True)
class Expectation:
    fired: tuple[str, ...] = ()
    not_fired: tuple[str, ...] = ()
    dose: Mapping[str, object] | None = None
    derived: Mapping[str, FactValue] = field(default_factory=dict)
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleTest:
    name: str
    hook: str
    facts: Mapping[str, FactValue] | None
    request: str | None
    expect: Expectation
    line: int


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    hooks: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    when: Node
    card: CardTemplate | None
    dose: DoseEffect | None
    derive: tuple[Derivation, ...]
    tests: tuple[RuleTest, ...]
    ruleset_id: str
    ruleset_version: str
    row: int  # position in its file: the priority
    file: str
    line: int
    source: Mapping[str, object]  # the rule as written, for the catalogue and the trace
    rationale: str = ""
    review_note: str = ""  # for reviewers (catalogue, explanation page); never on a card
    # where each comparison's threshold is written (line, col), so E010 points at it; not part of the meaning
    threshold_at: Mapping[Node, tuple[int, int]] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class RulesetMeta:
    id: str
    version: str
    status: str
    title: str
    purpose: str
    hit_policy: str
    jurisdiction: str
    owner: str
    approved_by: str
    approved_date: str
    effective_from: str
    review_by: str
    retired_ids: tuple[str, ...]
    raw: Mapping[str, object]


@dataclass(frozen=True)
class RuleFile:
    path: str
    meta: RulesetMeta
    rules: tuple[Rule, ...]  # the rules that passed every per-rule check
    ids: tuple[tuple[str, int], ...] = ()  # every rule id as written, with its line
