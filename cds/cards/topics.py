"""The cards of one response: the rules' card specs merged per clinical problem (topic), at most three cards.

A topic's card leads with its most severe spec (the first of those); the others support it. Cards are ordered by
indicator, then by clinical priority; what lies beyond the third card is folded into the third as "Also" lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cds.engine.compose import DoseDecision
from cds.engine.decision import CardSpec

MAX_CARDS = 3
SEVERITY = {"critical": 2, "warning": 1, "info": 0}
# Clinical priority among cards of one indicator: what makes the advice not apply first, then the one dose
# recommendation, then what the next decision lacks, then the drug, the level, and what to order next.
TOPIC_ORDER = ("scope", "dose", "missing-data", "interaction", "level", "monitoring")
TOPIC_DISPLAY = {
    "scope": "Outside the population the advice was validated in",
    "dose": "Imatinib dose",
    "missing-data": "Data the next decision needs is missing",
    "interaction": "Interacting drug",
    "level": "Imatinib level",
    "monitoring": "Monitoring due",
}


# When the composer changes or withholds the dose, the level that led to it and what to monitor are part of the
# one dose problem: the trough, the proposed dose and the trough to repeat make one card, not three.
JOINS_THE_DOSE = ("level", "monitoring")


@dataclass(frozen=True)
class Topic:
    """The specs of one clinical problem, in the order the rules fired."""

    code: str
    specs: tuple[CardSpec, ...]
    dose_rules: frozenset[str] = frozenset()  # the rules the composer's dose came from

    @property
    def lead(self) -> CardSpec:
        """The most severe spec; among those, one whose rule set the dose, then the first fired."""
        return max(self.specs, key=lambda s: (SEVERITY.get(s.indicator, 0), s.rule_id in self.dose_rules))

    @property
    def indicator(self) -> str:
        return self.lead.indicator

    @property
    def others(self) -> tuple[CardSpec, ...]:
        """The supporting findings: first those the dose came from (they explain the recommended dose), then by
        severity, then in fired order; a card over budget drops the last ones."""
        lead = self.lead
        rest = [s for s in self.specs if s is not lead]
        return tuple(sorted(rest, key=lambda s: (s.rule_id not in self.dose_rules, -SEVERITY.get(s.indicator, 0))))

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(s.rule_id for s in self.specs)


@dataclass(frozen=True)
class Slot:
    """One card: its topic, and the topics folded into it (only the last card has any)."""

    topic: Topic
    folded: tuple[Topic, ...] = ()

    @property
    def topics(self) -> tuple[Topic, ...]:
        return (self.topic, *self.folded)


def group(specs: Sequence[CardSpec], dose: DoseDecision | None = None) -> list[Topic]:
    """One topic per distinct ``CardSpec.topic``, in first-fired order. When the composer changes or withholds
    the dose, level and monitoring findings join the dose card; while it withholds, a trough order is no action
    (no steady state until imatinib is resumed), so a spec that only asks for one is left off the cards."""
    acting = dose is not None and dose.action in ("change", "withhold") and any(s.topic == "dose" for s in specs)
    by_code: dict[str, list[CardSpec]] = {}
    for spec in specs:
        if acting and dose is not None and dose.action == "withhold" and _only_orders_a_level(spec):
            continue
        code = "dose" if acting and spec.topic in JOINS_THE_DOSE else spec.topic
        by_code.setdefault(code, []).append(spec)
    dose_rules = frozenset(s.rule_id for s in dose.steps if s.rule_id) if dose is not None else frozenset()
    return [Topic(code, tuple(found), dose_rules) for code, found in by_code.items()]


def _only_orders_a_level(spec: CardSpec) -> bool:
    return bool(spec.suggestions) and all(t.action == "order-level" for t in spec.suggestions)


def ordered(topics: Sequence[Topic]) -> list[Topic]:
    """Most severe first; among equals the clinical priority, then topics not (yet) in the vocabulary, in order."""

    def rank(topic: Topic) -> tuple[int, int]:
        priority = TOPIC_ORDER.index(topic.code) if topic.code in TOPIC_ORDER else len(TOPIC_ORDER)
        return (-SEVERITY.get(topic.indicator, 0), priority)

    return sorted(topics, key=rank)  # stable: equal ranks keep first-fired order


def slots(specs: Sequence[CardSpec], dose: DoseDecision | None = None, limit: int = MAX_CARDS) -> list[Slot]:
    topics = ordered(group(specs, dose))
    if len(topics) <= limit:
        return [Slot(t) for t in topics]
    return [*(Slot(t) for t in topics[: limit - 1]), Slot(topics[limit - 1], tuple(topics[limit:]))]


def display(topic: str, titles: dict[str, str]) -> str:
    """The human name of a topic; a rule id (a rule that names no topic yet) shows its rule's title."""
    return TOPIC_DISPLAY.get(topic) or titles.get(topic, topic)


def placement(specs: Sequence[CardSpec], dose: DoseDecision | None = None, limit: int = MAX_CARDS) -> dict[str, str]:
    """rule id -> the topic code of the card its spec is shown on (a folded topic: the last card's)."""
    return {
        spec.rule_id: slot.topic.code for slot in slots(specs, dose, limit) for t in slot.topics for spec in t.specs
    }
