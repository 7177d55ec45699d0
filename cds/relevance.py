"""Relevance by hook: which of a decision's cards the clinician sees in this hook (issue 14).

- order-sign acts on drafts of imatinib and of drugs that interact with it (the value sets named in
  rules/mapping.yaml ``relevance``); an order session of amoxicillin and levothyroxine for a patient on imatinib
  has nothing to do with imatinib, whatever the patient's TDM status.
- order-select acts on the drafts named in ``context.selections`` only: the other drafts of the session are not
  what the clinician is looking at.
- patient-view shows what is actionable now. Cards are kept by topic (cds/engine/schema.py CARD_TOPICS): an
  informational level card (on target, no action) is shown only while the level is recent enough to act on
  (policy.actionable_level_max_age_days); a level finding that asks for action (warning or critical) stays however
  old, since a dose card may rest on it; monitoring (TDM due or overdue), dose (toxicity and other dose actions),
  interaction (a drug to stop or watch), missing-data and scope stay, as does a card whose topic is not in the
  vocabulary.

A request that is not relevant answers no cards. The decision is still made and audited; the trace says why.
The stage reads the record's plain draft descriptions and the decision, never FHIR; only the pipeline calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds.engine.conditions import FactValue
from cds.engine.decision import CardSpec
from cds.engine.policy import Policy
from cds.errors import RuleError
from cds.fhir.types import DraftDrug
from cds.numbers import format_number
from cds.units import UnitError, convert

LEVEL_RECENCY = "actionable_level_max_age_days"
_ORDER_HOOKS = ("order-sign", "order-select")
_ABOUT_IMATINIB = ("imatinib", "interacting", "unidentified")  # "unidentified": cannot tell it is not
# what tells that a patient-view is about imatinib at all: a regimen or a level of it on record
_ON_IMATINIB = ("regimen.", "level.")


@dataclass(frozen=True)
class DroppedCard:
    rule_id: str
    topic: str
    because: str


@dataclass(frozen=True)
class Relevance:
    hook: str
    relevant: bool
    why: str
    cards: tuple[CardSpec, ...]  # the cards to show
    dropped: tuple[DroppedCard, ...] = ()
    drafts: tuple[DraftDrug, ...] = ()

    def trace(self) -> dict[str, Any]:
        return {
            "relevant": self.relevant,
            "why": self.why,
            "drafts": [
                {
                    "order": d.order,
                    "acted_on": d.acted_on,
                    "kind": d.kind,
                    **({"drug": d.drug} if d.drug else {}),
                    **({"classes": list(d.classes)} if d.classes else {}),
                }
                for d in self.drafts
            ],
            "dropped": [{"rule": d.rule_id, "topic": d.topic, "because": d.because} for d in self.dropped],
        }


def judge(
    hook: str,
    drafts: Sequence[DraftDrug],
    facts: Mapping[str, FactValue],
    cards: Sequence[CardSpec],
    policy: Policy,
) -> Relevance:
    """The cards of ``cards`` to show for this hook, and why."""
    if hook in _ORDER_HOOKS:
        return _order_hook(hook, tuple(drafts), tuple(cards))
    if hook == "patient-view":
        return _patient_view(facts, tuple(cards), policy)
    return _none(hook, f"{hook}: not a hook this service answers", cards)


def _order_hook(hook: str, drafts: tuple[DraftDrug, ...], cards: tuple[CardSpec, ...]) -> Relevance:
    acted_on = [d for d in drafts if d.acted_on]
    about = [d for d in acted_on if d.kind in _ABOUT_IMATINIB]
    if about:
        return Relevance(hook, True, f"{hook}: {'; '.join(_reason(d) for d in about)}", cards, drafts=drafts)
    which = "draft selected" if hook == "order-select" else "draft"
    listed = f"drafts: {_names(acted_on)}" if hook == "order-sign" else f"selected: {_names(acted_on)}"
    unselected = [d for d in drafts if not d.acted_on]
    if hook == "order-select" and unselected:
        listed += f"; not selected: {_names(unselected)}"
    return _none(hook, f"{hook}: no imatinib or interacting {which} ({listed})", cards, drafts)


def _reason(draft: DraftDrug) -> str:
    if draft.kind == "imatinib":
        return f"imatinib draft {draft.order}"
    if draft.kind == "interacting":
        return f"interacting draft {draft.order} ({draft.drug}: {', '.join(draft.classes)})"
    return f"cannot tell what {draft.order} orders (its medication cannot be read or found)"


def _names(drafts: Sequence[DraftDrug]) -> str:
    return ", ".join(_name(d) for d in drafts) or "none"


def _name(draft: DraftDrug) -> str:
    if draft.kind == "no-medication":
        return f"{draft.order} names no medication"
    if draft.kind == "not-a-medication":
        return draft.order
    return draft.drug or draft.order


def _patient_view(facts: Mapping[str, FactValue], cards: tuple[CardSpec, ...], policy: Policy) -> Relevance:
    hook = "patient-view"
    if not any(name.startswith(_ON_IMATINIB) for name in facts):
        return _none(hook, f"{hook}: no imatinib therapy or level on record", cards)
    stale = _stale_level(facts, policy) if any(c.topic == "level" for c in cards) else None
    kept: list[CardSpec] = []
    dropped: list[DroppedCard] = []
    for card in cards:
        if stale is not None and card.topic == "level" and card.indicator == "info":
            dropped.append(DroppedCard(card.rule_id, card.topic, stale))
        else:
            kept.append(card)
    why = f"{hook}: imatinib therapy on record"
    if dropped:
        why += f"; {len(dropped)} card(s) not actionable now ({stale})"
    return Relevance(hook, True, why, tuple(kept), tuple(dropped))


def _stale_level(facts: Mapping[str, FactValue], policy: Policy) -> str | None:
    """Why the latest level is too old to interpret now, or None while it is recent (or its age unknown)."""
    age = facts.get("level.age_days")
    max_days = level_recency_days(policy)
    if not isinstance(age, int | float) or isinstance(age, bool) or age <= max_days:
        return None
    return (
        f"the latest level was drawn {format_number(age)} days ago, more than the "
        f"{format_number(max_days)} days of policy.{LEVEL_RECENCY}"
    )


def level_recency_days(policy: Policy) -> float:
    """policy.actionable_level_max_age_days in days; a RuleError when the policy lacks it or it is no duration."""
    if LEVEL_RECENCY not in policy.parameters:
        raise RuleError(f"policy.{LEVEL_RECENCY} is missing from the policy (the relevance stage needs it)")
    limit = policy.quantity(LEVEL_RECENCY)
    try:
        return convert(limit.value, limit.unit, "d")
    except UnitError as exc:
        raise RuleError(f"policy.{LEVEL_RECENCY} must be a duration such as '14 d': {exc}") from exc


def _none(hook: str, why: str, cards: Sequence[CardSpec], drafts: tuple[DraftDrug, ...] = ()) -> Relevance:
    dropped = tuple(DroppedCard(c.rule_id, c.topic, "the request is not relevant") for c in cards)
    return Relevance(hook, False, why, (), dropped, drafts)
