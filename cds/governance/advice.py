"""What a decision advised, in the terms a P&T committee compares two rule sets by.

Recorded and recomputed decisions are reduced to the same ``Advice``: the dose action and amount, the rules
that fired, and the cards as a clinician saw them. Card and suggestion ids, explanation links and the source
label (which names rule-file versions) are left out: they differ without the advice differing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds.pipeline import Outcome

_NOT_ADVICE = frozenset({"uuid", "links"})  # ids derive from the hookInstance; links carry a signed token


@dataclass(frozen=True)
class Advice:
    action: str | None
    daily_mg: float | None
    interval_h: float | None
    fired: tuple[str, ...]
    cards: tuple[Mapping[str, Any], ...]

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
        cards=tuple(_as_shown(c) for c in payload.get("cards") or ()),
    )


def advice_of(outcome: Outcome) -> Advice:
    dose = outcome.decision.dose
    return Advice(
        action=dose.action,
        daily_mg=dose.daily_mg,
        interval_h=dose.interval_h,
        fired=outcome.decision.fired_ids,
        cards=tuple(_as_shown(c) for c in outcome.cards),
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
    """The rules a change is filed under: those that fired on one side only, else every rule that fired
    (the same rules gave other text or another dose)."""
    only = set(before.fired) ^ set(after.fired)
    ordered: Sequence[str] = [*after.fired, *(r for r in before.fired if r not in after.fired)]
    return [r for r in dict.fromkeys(ordered) if r in only] if only else list(dict.fromkeys(ordered))


def _as_shown(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _as_shown(v) for k, v in value.items() if k not in _NOT_ADVICE}
        source = out.get("source")
        if isinstance(source, Mapping):
            out["source"] = {k: v for k, v in source.items() if k != "label"}
        return out
    if isinstance(value, list | tuple):
        return [_as_shown(v) for v in value]
    return value
