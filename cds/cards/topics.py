"""The cards of one response: the rules' card specs merged per clinical problem (topic), at most three cards.

A topic's card leads with its most severe spec (the first of those); the others support it. Cards are ordered by
indicator, then by clinical priority; what lies beyond the third card is folded into the third as "Also" lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Topic:
    """The specs of one clinical problem, in the order the rules fired."""

    code: str
    specs: tuple[CardSpec, ...]

    @property
    def lead(self) -> CardSpec:
        return max(self.specs, key=lambda s: SEVERITY.get(s.indicator, 0))  # max keeps the first of equals

    @property
    def indicator(self) -> str:
        return self.lead.indicator

    @property
    def others(self) -> tuple[CardSpec, ...]:
        lead = self.lead
        return tuple(s for s in self.specs if s is not lead)

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


def group(specs: Sequence[CardSpec]) -> list[Topic]:
    """One topic per distinct ``CardSpec.topic``, in first-fired order."""
    by_code: dict[str, list[CardSpec]] = {}
    for spec in specs:
        by_code.setdefault(spec.topic, []).append(spec)
    return [Topic(code, tuple(found)) for code, found in by_code.items()]


def ordered(topics: Sequence[Topic]) -> list[Topic]:
    """Most severe first; among equals the clinical priority, then topics not (yet) in the vocabulary, in order."""

    def rank(topic: Topic) -> tuple[int, int]:
        priority = TOPIC_ORDER.index(topic.code) if topic.code in TOPIC_ORDER else len(TOPIC_ORDER)
        return (-SEVERITY.get(topic.indicator, 0), priority)

    return sorted(topics, key=rank)  # stable: equal ranks keep first-fired order


def slots(specs: Sequence[CardSpec], limit: int = MAX_CARDS) -> list[Slot]:
    topics = ordered(group(specs))
    if len(topics) <= limit:
        return [Slot(t) for t in topics]
    return [*(Slot(t) for t in topics[: limit - 1]), Slot(topics[limit - 1], tuple(topics[limit:]))]


def display(topic: str, titles: dict[str, str]) -> str:
    """The human name of a topic; a rule id (a rule that names no topic yet) shows its rule's title."""
    return TOPIC_DISPLAY.get(topic) or titles.get(topic, topic)


def placement(specs: Sequence[CardSpec], limit: int = MAX_CARDS) -> dict[str, str]:
    """rule id -> the topic code of the card its spec is shown on (a folded topic: the last card's)."""
    return {spec.rule_id: slot.topic.code for slot in slots(specs, limit) for t in slot.topics for spec in t.specs}
