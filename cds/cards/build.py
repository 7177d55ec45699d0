"""Decision -> CDS Hooks 2.0 cards: one card per clinical problem (topic), at most three, short enough to read.

Each card leads with the summary and template text of its most severe rule; the other rules on its topic add a
line each, the key facts a short list, the sources one line. The full fact table, how the dose was composed,
evidence notes and rule ids are on the explanation page behind the card's link.

Suggestions: the composer's one dose recommendation (on the dose card) and at most one trough order (none while
imatinib is withheld); each states what it does. Card and suggestion uuids are uuid5 of the hookInstance, the
topic and the action, so a replayed decision keeps its ids. Nothing null or empty is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cds.cards.orders import dose_plan, rewrite_dose, trough_level_order
from cds.cards.text import KeyFact, Section, fit, merge_reasons, reflow, short_citations
from cds.cards.topics import TOPIC_ORDER, Slot, Topic, display, slots
from cds.engine.compose import DoseDecision
from cds.engine.conditions import CENSOR_SUFFIX, FactValue
from cds.engine.decision import Decision
from cds.engine.render import CENSOR_SIGN, format_value
from cds.engine.vocabulary import Vocabulary
from cds.fhir.request_text import escape_markdown, plain_label

TOPIC_SYSTEM = "https://imatinib-cds.example/CodeSystem/card-topic"
RULE_SYSTEM = "https://imatinib-cds.example/rules"  # a topic that is still a rule id (rule names no topic yet)
OVERRIDE_SYSTEM = "https://imatinib-cds.example/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("clinical-judgement", "Clinical judgement: advice does not apply to this patient"),
    ("data-incorrect", "The data the advice is based on is incorrect or outdated"),
    ("already-addressed", "Already addressed in the plan of care"),
    ("patient-preference", "Patient preference after discussion"),
)
MAX_KEY_FACTS = 4
DOSE_ACTIONS = {"apply-dose": "change", "withhold": "withhold"}  # suggestion template -> composer action
_NAMESPACE = uuid.UUID("6f1e2b0c-9a57-4c1e-8d2f-3b7a5e4c9d10")


@dataclass(frozen=True)
class RecordedFact:
    """A fact as read from the request: its value, canonical unit and the time of its newest source."""

    value: FactValue
    unit: str | None = None
    when: datetime | None = None
    reported: str = ""  # as the laboratory wrote it, when its unit was converted (request text: not yet escaped)
    computed: str = ""  # how a computed value was made (may quote request text: not yet escaped)


@dataclass(frozen=True)
class CardContext:
    hook_instance: str  # the audit-anchor work feeds a client-scoped key here; ids derive from it
    patient_id: str | None
    draft_orders: Sequence[Mapping[str, Any]] = ()
    recorded: Mapping[str, RecordedFact] = field(default_factory=dict)  # facts read from the request
    explain_url: str | None = None
    vocabulary: Vocabulary | None = None  # fact labels and units
    display_zone: str = "UTC"  # time zone of the dates on cards


def build_cards(decision: Decision, ctx: CardContext) -> list[dict[str, Any]]:
    titles = {f.rule_id: f.title for f in decision.fired}
    placed = slots(decision.cards, decision.dose)
    homes = _suggestion_homes(placed, decision)
    return [
        prune(_card(slot, decision, ctx, titles, {k: label for k, (home, label) in homes.items() if home == index}))
        for index, slot in enumerate(placed)
    ]


def facts_behind(decision: Decision, rule_id: str) -> list[str]:
    """The facts a rule read, followed by the facts behind any derived fact among them."""
    used = {f.rule_id: list(f.facts_used) for f in decision.fired}
    derived_by = {name: f.rule_id for f in decision.fired for name in f.derived}
    ordered: list[str] = []
    pending = list(used.get(rule_id, ()))
    while pending:
        name = pending.pop(0)
        if name not in ordered:
            ordered.append(name)
            pending.extend(used[derived_by[name]] if name in derived_by else ())
    return ordered


def _suggestion_homes(placed: Sequence[Slot], decision: Decision) -> dict[str, tuple[int, str]]:
    """Which card carries each distinct action, and the rule's label for it: the dose change or withhold on
    the dose card (else the first card whose rules ask for it), the trough order on the first card that asks
    for one (with that rule's label, which says when to draw it); never a trough order while the composer
    withholds imatinib."""
    wanted: dict[str, tuple[int, str]] = {}
    for index, slot in enumerate(placed):
        for topic in slot.topics:
            for spec in topic.specs:
                for template in spec.suggestions:
                    kind = "dose" if template.action in DOSE_ACTIONS else template.action
                    if kind == "dose" and DOSE_ACTIONS[template.action] != decision.dose.action:
                        continue
                    wanted.setdefault(kind, (index, template.label))
    if "dose" in wanted:
        dose_card = next((i for i, s in enumerate(placed) if any(t.code == "dose" for t in s.topics)), None)
        wanted["dose"] = wanted["dose"] if dose_card is None else (dose_card, "")
    if decision.dose.action == "withhold":
        wanted.pop("order-level", None)
    wanted.pop("none", None)
    return wanted


def _card(
    slot: Slot, decision: Decision, ctx: CardContext, titles: dict[str, str], kinds: Mapping[str, str]
) -> dict[str, Any]:
    topic, lead = slot.topic, slot.topic.lead
    card_id = str(uuid.uuid5(_NAMESPACE, f"{ctx.hook_instance}/{topic.code}"))
    first = sorted(kinds, key=lambda kind: kind != "dose")  # the dose change leads; the trough to repeat follows
    suggestions = [s for kind in first for s in _suggestion(kind, kinds[kind], topic.code, decision, ctx)]
    card: dict[str, Any] = {
        "uuid": card_id,
        "summary": lead.summary,
        "indicator": lead.indicator,
        "detail": _detail(slot, decision, ctx, "dose" in kinds or topic.code == "dose"),
        "source": {
            "label": f"imatinib-cds ({lead.ruleset_id} rules {lead.ruleset_version})",
            "url": next((e.url for e in lead.evidence if e.url), None),
            "topic": {
                "system": TOPIC_SYSTEM if topic.code in TOPIC_ORDER else RULE_SYSTEM,
                "code": topic.code,
                "display": display(topic.code, titles),
            },
        },
        "suggestions": suggestions,
        # a dose change and a trough order are meant to be accepted together; alternatives never share a card
        "selectionBehavior": ("any" if len(suggestions) > 1 else "at-most-one") if suggestions else None,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in OVERRIDE_REASONS],
    }
    if ctx.explain_url:
        card["links"] = [
            {
                "label": "Why this advice (facts, dose steps, evidence, concentration plot)",
                "url": ctx.explain_url,
                "type": "absolute",
            }
        ]
    return card


# --- suggestions ---------------------------------------------------------------------------------------------


def _suggestion(kind: str, rule_label: str, topic: str, decision: Decision, ctx: CardContext) -> list[dict[str, Any]]:
    """The one suggestion for ``kind`` ("dose" or "order-level"), or none when there is nothing to act on. A dose
    suggestion's label is the resulting regimen (rules' labels such as "Start at 50%" may contradict the dose
    the composer chose from several rules); a trough order keeps the rule's label (when to draw it)."""
    dose = decision.dose
    drafts = [o for o in ctx.draft_orders if o.get("id")]
    label, actions = "", []
    if kind == "dose" and dose.action == "change" and dose.daily_mg and dose.interval_h and drafts:
        # The drafts together are the regimen: rewrite the first to the whole new dose and remove the others, so
        # that accepting gives exactly the suggested regimen (deletes are processed before updates).
        first, others = drafts[0], drafts[1:]
        regimen = dose_plan(first, dose.daily_mg, dose.interval_h).regimen
        label = f"Change to {regimen}"
        actions = [
            *(
                {
                    "type": "delete",
                    "description": "Remove this draft imatinib order: the updated order carries the whole dose",
                    "resourceId": f"MedicationRequest/{o['id']}",
                }
                for o in others
            ),
            {
                "type": "update",
                "description": f"Change the draft imatinib order to {regimen}",
                "resource": rewrite_dose(first, dose.daily_mg, dose.interval_h),
            },
        ]
    elif kind == "dose" and dose.action == "withhold" and drafts:
        label = "Withhold imatinib: remove the draft order" + ("s" if len(drafts) > 1 else "")
        actions = [
            {
                "type": "delete",
                "description": "Withhold imatinib: remove the draft imatinib order",
                "resourceId": f"MedicationRequest/{o['id']}",
            }
            for o in drafts
        ]
    elif kind == "order-level":
        label = rule_label
        order_id = str(uuid.uuid5(_NAMESPACE, f"{ctx.hook_instance}/{topic}/order-level/resource"))
        actions = [
            {
                "type": "create",
                "description": "Order an imatinib trough level",
                "resource": trough_level_order(ctx.patient_id, order_id),
            }
        ]
    if not actions:
        return []
    suggestion_id = str(uuid.uuid5(_NAMESPACE, f"{ctx.hook_instance}/{topic}/{kind}"))
    return [{"label": label, "uuid": suggestion_id, "actions": actions}]


# --- detail --------------------------------------------------------------------------------------------------


def _detail(slot: Slot, decision: Decision, ctx: CardContext, dose_card: bool) -> str:
    """At most 15 lines: the lead rule's text, the topic's other findings, the dose, key facts, sources, and
    one "Also" line per folded topic. Over budget, key facts go first, then other findings, then later
    paragraphs of the text; the dose, sources and "Also" lines stay."""
    topic = slot.topic
    text = reflow(topic.lead.detail)
    first_paragraph = text.index("") if "" in text else len(text)
    findings = [f"- {line}" for line in merge_reasons([spec.summary for spec in topic.others])]
    dose_line = _dose_line(decision, ctx)
    dose = [dose_line] if dose_card and dose_line else []
    facts = _key_facts(topic, decision, ctx)
    citations = short_citations(e for s in topic.specs for e in s.evidence)
    also = [f"- **Also:** {t.lead.summary}" for t in slot.folded]
    sections = [
        Section(text, keep=first_paragraph, drop_rank=2),
        Section(findings, keep=min(len(findings), 1), drop_rank=1),
        Section(dose, keep=len(dose)),
        Section(["**Key facts**", *facts] if facts else [], keep=0, drop_rank=0),
        Section([f"**Sources:** {'; '.join(citations)}"] if citations else [], keep=1),
        Section(also, keep=len(also)),
    ]
    return fit(sections)


def _dose_line(decision: Decision, ctx: CardContext) -> str:
    dose = decision.dose
    first = next((o for o in ctx.draft_orders if o.get("id")), None)
    if dose.action == "withhold":
        # removing the drafts does not stop an active order: it is held in the EHR, which a suggestion cannot do
        active = decision.facts.get("regimen.active_order") is True
        stop = ": put the active order on hold and tell the patient to stop taking it." if active else "."
        return "**Recommended:** withhold imatinib" + stop
    if dose.action == "change" and dose.daily_mg and dose.interval_h:
        return f"**Recommended dose:** {dose_plan(first, dose.daily_mg, dose.interval_h).regimen}{_arithmetic(dose)}."
    return ""


def _arithmetic(dose: DoseDecision) -> str:
    """ " (400 mg/day x 0.5 x 1.5)" when label factors were applied to a dose base: how the findings on the card
    add up to the dose; "" when the dose is simply set."""
    parts = [s.arithmetic for s in dose.steps if s.arithmetic]
    if len(parts) < 2 or not parts[0].endswith("mg/day"):
        return ""
    return f" ({' '.join(parts)})"


def _key_facts(topic: Topic, decision: Decision, ctx: CardContext) -> list[str]:
    """The labelled facts the topic's rules read, at most four."""
    names: list[str] = []
    for rule_id in topic.rule_ids:
        names.extend(n for n in facts_behind(decision, rule_id) if n not in names)
    vocabulary = ctx.vocabulary
    shown = [n for n in names if _showable(n, decision)]
    # only facts with a clinician's label: the others (methods, codes) are on the explanation page
    labelled = [n for n in shown if vocabulary is not None and n in vocabulary and vocabulary[n].label]
    labelled = _first_of_each_text(labelled, decision)
    zone = ZoneInfo(ctx.display_zone)
    return [f"- {_key_fact(n, decision, ctx).line(zone)}" for n in labelled[:MAX_KEY_FACTS]]


def _first_of_each_text(names: list[str], decision: Decision) -> list[str]:
    """One line per text value: the inducer's name read as "strong inducer" and as "inducer" is one fact to the
    reader. Numbers are kept, since two facts may share a value and still mean different things."""
    seen: set[str] = set()
    kept = []
    for name in names:
        value = decision.facts[name]
        if isinstance(value, str):
            if value in seen:
                continue
            seen.add(value)
        kept.append(name)
    return kept


def _showable(name: str, decision: Decision) -> bool:
    value = decision.facts.get(name)
    if value is None or isinstance(value, bool) or name.endswith(CENSOR_SUFFIX) or name in decision.derived:
        return False
    return not isinstance(value, str) or len(value) <= 40  # long texts (order compositions) are in the template


def _key_fact(name: str, decision: Decision, ctx: CardContext) -> KeyFact:
    vocabulary = ctx.vocabulary
    spec = vocabulary[name] if vocabulary is not None and name in vocabulary else None
    label = spec.display_name if spec is not None else "Value"
    value = decision.facts[name]
    recorded = ctx.recorded.get(name)
    side = decision.facts.get(name + CENSOR_SUFFIX)
    # strings may have come from the request: plain_label leaves nothing markdown or HTML could read as markup
    shown = plain_label(value) if isinstance(value, str) else CENSOR_SIGN.get(str(side), "") + format_value(value)
    unit = (recorded.unit if recorded is not None else None) or (spec.unit if spec is not None else None)
    reported = plain_label(recorded.reported) if recorded is not None and recorded.reported else ""
    computed = escape_markdown(recorded.computed) if recorded is not None and recorded.computed else ""
    return KeyFact(
        label,
        shown,
        unit if not isinstance(value, str) else None,
        recorded.when if recorded else None,
        reported,
        computed,
    )


def prune(value: Any) -> Any:
    """Drop None, empty strings, lists and objects everywhere (CDS Hooks: JSON elements SHALL NOT be empty)."""
    if isinstance(value, dict):
        cleaned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (prune(item) for item in value) if v not in (None, "", [], {})]
    return value
