"""What a decision advised, in the terms a P&T committee compares two rule sets by.

Recorded and recomputed decisions are reduced to the same ``Advice``: the dose action and amount, the rules
that fired, and the cards as a clinician saw them. Card and suggestion ids, explanation links and the source
label (which names rule-file versions) are left out: they differ without the advice differing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds.cards.topics import placement
from cds.pipeline import Outcome

_NOT_ADVICE = frozenset({"uuid", "links"})  # ids derive from the hookInstance; links carry a signed token


@dataclass(frozen=True)
class Advice:
    action: str | None
    daily_mg: float | None
    interval_h: float | None
    fired: tuple[str, ...]
    cards: tuple[Mapping[str, Any], ...]
    shown_on: Mapping[str, str]  # rule -> the topic code of the card its finding was shown on

    @property
    def summaries(self) -> list[str]:
        return [str(card.get("summary", "")) for card in self.cards]

    def brief(self) -> dict[str, Any]:
        """The JSON of a change: what was advised, in a line or two."""
        return {
            "action": self.action,
            "daily_mg": self.daily_mg,
            "interval_h": self.interval_h,
            "fired": list(self.fired),
            "summaries": self.summaries,
        }


def recorded_advice(payload: Mapping[str, Any]) -> Advice:
    """The advice of a decision entry of the audit log (its payload)."""
    dose = payload.get("dose") or {}
    return Advice(
        action=dose.get("action"),
        daily_mg=dose.get("daily_mg"),
        interval_h=dose.get("interval_h"),
        fired=tuple(str(f.get("rule")) for f in payload.get("fired") or ()),
        cards=tuple(_as_shown(c) for c in payload.get("cards") or () if isinstance(c, Mapping)),
        shown_on={str(f.get("rule")): str(f["card"]) for f in payload.get("fired") or () if f.get("card")},
    )


def advice_of(outcome: Outcome) -> Advice:
    dose = outcome.decision.dose
    return Advice(
        action=dose.action,
        daily_mg=dose.daily_mg,
        interval_h=dose.interval_h,
        fired=outcome.decision.fired_ids,
        cards=tuple(_as_shown(c) for c in outcome.cards),
        shown_on=placement(outcome.relevance.cards, dose) if outcome.relevance and outcome.cards else {},
    )


def differences(before: Advice, after: Advice) -> list[str]:
    """Which parts of the advice differ: "dose", "rules" (fired), "cards"; empty when it is the same."""
    found = []
    if (before.action, before.daily_mg, before.interval_h) != (after.action, after.daily_mg, after.interval_h):
        found.append("dose")
    if before.fired != after.fired:
        found.append("rules")
    if before.cards != after.cards:
        found.append("cards")
    return found


def rules_behind(before: Advice, after: Advice) -> list[str]:
    """The rules a change is filed under: those that fired on one side only, and those whose findings are on
    a card that reads differently; failing both (the dose alone moved), every rule that fired."""
    only = set(before.fired) ^ set(after.fired)
    mine = {_topic(c): c for c in before.cards}, {_topic(c): c for c in after.cards}
    moved = {t for t in mine[0].keys() | mine[1].keys() if mine[0].get(t) != mine[1].get(t)}
    on_moved = {r for side in (before, after) for r, topic in side.shown_on.items() if topic in moved}
    ordered = dict.fromkeys([*after.fired, *before.fired])
    return [r for r in ordered if r in only | on_moved] or list(ordered)


def _topic(card: Mapping[str, Any]) -> str:
    source = card.get("source")
    topic = source.get("topic") if isinstance(source, Mapping) else None
    return str(topic.get("code")) if isinstance(topic, Mapping) else ""


def _as_shown(card: Mapping[str, Any]) -> dict[str, Any]:
    """A card without what differs when the advice does not: its id and links, its suggestions' ids, and the
    source label (it names rule-file versions)."""
    shown = {k: v for k, v in card.items() if k not in _NOT_ADVICE}
    if isinstance(shown.get("source"), Mapping):
        shown["source"] = {k: v for k, v in shown["source"].items() if k != "label"}
    if isinstance(shown.get("suggestions"), list):
        shown["suggestions"] = [
            {k: v for k, v in s.items() if k != "uuid"} if isinstance(s, Mapping) else s for s in shown["suggestions"]
        ]
    return shown
