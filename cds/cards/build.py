"""Decision -> CDS Hooks 2.0 cards: one card per fired rule that has a card template.

Every card and suggestion has a uuid (uuid5 of the hookInstance and rule, so a replayed decision keeps its
ids); suggestions that change the order carry the whole rewritten resource; nothing null or empty is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cds.cards.orders import rewrite_dose, trough_level_order
from cds.engine.decision import CardSpec, Decision
from cds.engine.render import format_value

TOPIC_SYSTEM = "https://imatinib-cds.example/rules"
OVERRIDE_SYSTEM = "https://imatinib-cds.example/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("clinical-judgement", "Clinical judgement: advice does not apply to this patient"),
    ("data-incorrect", "The data the advice is based on is incorrect or outdated"),
    ("already-addressed", "Already addressed in the plan of care"),
    ("patient-preference", "Patient preference after discussion"),
)
_NAMESPACE = uuid.UUID("6f1e2b0c-9a57-4c1e-8d2f-3b7a5e4c9d10")


@dataclass(frozen=True)
class CardContext:
    hook_instance: str
    patient_id: str | None
    draft_orders: Sequence[Mapping[str, Any]] = ()
    fact_lines: Mapping[str, str] = field(default_factory=dict)  # fact -> "value unit (source, date)"
    pk_lines: Sequence[str] = ()
    explain_url: str | None = None


def build_cards(decision: Decision, ctx: CardContext) -> list[dict[str, Any]]:
    titles = {f.rule_id: f.title for f in decision.fired}
    return [
        prune(_card(spec, titles[spec.rule_id], facts_behind(decision, spec.rule_id), decision, ctx))
        for spec in decision.cards
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


def _card(spec: CardSpec, title: str, facts: list[str], decision: Decision, ctx: CardContext) -> dict[str, Any]:
    card_id = str(uuid.uuid5(_NAMESPACE, f"{ctx.hook_instance}/{spec.rule_id}"))
    suggestions = _suggestions(spec, decision, ctx, card_id)
    card: dict[str, Any] = {
        "uuid": card_id,
        "summary": spec.summary,
        "indicator": spec.indicator,
        "detail": _detail(spec, facts, decision, ctx, bool(suggestions)),
        "source": {
            "label": f"imatinib-cds ({spec.ruleset_id} rules {spec.ruleset_version})",
            "url": next((e.url for e in spec.evidence if e.url), None),
            "topic": {"system": TOPIC_SYSTEM, "code": spec.rule_id, "display": title},
        },
        "suggestions": suggestions,
        "selectionBehavior": "at-most-one" if suggestions else None,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in OVERRIDE_REASONS],
    }
    if ctx.explain_url:
        card["links"] = [
            {
                "label": "Why this advice (explanation and concentration plot)",
                "url": ctx.explain_url,
                "type": "absolute",
            }
        ]
    return card


def _suggestions(spec: CardSpec, decision: Decision, ctx: CardContext, card_id: str) -> list[dict[str, Any]]:
    found = []
    for template in spec.suggestions:
        actions = _actions(template.action, decision, ctx, card_id)
        if actions:
            found.append(
                {
                    "label": template.label,
                    "uuid": str(uuid.uuid5(_NAMESPACE, f"{card_id}/{template.label}")),
                    "actions": actions,
                }
            )
    return found


def _actions(kind: str, decision: Decision, ctx: CardContext, card_id: str) -> list[dict[str, Any]]:
    dose = decision.dose
    drafts = [o for o in ctx.draft_orders if o.get("id")]
    if kind == "apply-dose" and dose.action == "change" and dose.daily_mg and dose.interval_h and drafts:
        # The drafts together are the regimen: rewrite the first to the whole new dose and remove the others, so
        # that accepting gives exactly the suggested regimen (deletes are processed before updates).
        what = f"{format_value(dose.daily_mg)} mg/day" + (" as twice-daily doses" if dose.interval_h == 12 else "")
        first, others = drafts[0], drafts[1:]
        return [
            *(
                {
                    "type": "delete",
                    "description": f"Remove draft imatinib order {o['id']}: the updated order carries the whole dose",
                    "resourceId": f"MedicationRequest/{o['id']}",
                }
                for o in others
            ),
            {
                "type": "update",
                "description": f"Change the draft imatinib order to {what}",
                "resource": rewrite_dose(first, dose.daily_mg, dose.interval_h),
            },
        ]
    if kind == "withhold" and dose.action == "withhold":
        return [
            {
                "type": "delete",
                "description": "Withhold imatinib: remove the draft imatinib order",
                "resourceId": f"MedicationRequest/{o['id']}",
            }
            for o in drafts
        ]
    if kind == "order-level":
        order_id = str(uuid.uuid5(_NAMESPACE, f"{card_id}/level"))
        return [
            {
                "type": "create",
                "description": "Order an imatinib trough level",
                "resource": trough_level_order(ctx.patient_id, order_id),
            }
        ]
    return []


def _detail(spec: CardSpec, facts: list[str], decision: Decision, ctx: CardContext, actionable: bool) -> str:
    parts = [spec.detail.strip()]
    if actionable and decision.dose.action in ("change", "withhold"):
        parts.append("**How the dose was composed**\n\n" + "\n".join(f"- {s.text}" for s in decision.dose.steps))
    rows = [f"| {name} | {ctx.fact_lines.get(name, _value(decision, name))} |" for name in facts]
    if rows:
        parts.append("**Facts used**\n\n| fact | value (source, date) |\n|---|---|\n" + "\n".join(rows))
    if ctx.pk_lines and any(name.startswith(("pk.", "tdm.", "level.")) for name in facts):
        parts.append("**PK estimate**\n\n" + "\n".join(f"- {line}" for line in ctx.pk_lines))
    evidence = [
        f"- {e.citation} ({e.level})" + (f" <{e.url}>" if e.url else "") + (f". {e.note}" if e.note else "")
        for e in spec.evidence
    ]
    parts.append("**Evidence**\n\n" + "\n".join(evidence))
    parts.append(f"Rule {spec.rule_id}, {spec.ruleset_id} rules version {spec.ruleset_version}.")
    return "\n\n".join(p for p in parts if p)


def _value(decision: Decision, name: str) -> str:
    value = decision.facts.get(name)
    if value is None:
        return "not recorded"
    return format_value(value) + (" (derived by the rules)" if name in decision.derived else "")


def prune(value: Any) -> Any:
    """Drop None, empty strings, lists and objects everywhere (CDS Hooks: JSON elements SHALL NOT be empty)."""
    if isinstance(value, dict):
        cleaned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (prune(item) for item in value) if v not in (None, "", [], {})]
    return value
