"""``audit show``: one recorded decision as an auditor reads it, from its audit entry alone.

What was advised (cards, dose), on which facts (those the fired rules used, with their FHIR sources), by
which rules (id and version, the rule set's version and digest), the PK estimate, the feedback and where the
entry sits in the hash chain. ``audit show --json`` prints the whole record instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cds.numbers import format_number


def format_decision(entry: Mapping[str, Any], feedback: Sequence[Mapping[str, Any]], head_seq: int) -> str:
    payload: Mapping[str, Any] = entry.get("payload") or {}
    lines = [f"Decision {entry.get('hook_instance')} ({payload.get('service', entry.get('service_id'))})"]
    lines += _field_lines(entry, payload)
    lines += _advice_lines(payload)
    lines += _rule_lines(payload)
    lines += _fact_lines(payload)
    warnings = [str(w) for w in payload.get("warnings") or []]
    if warnings:
        lines += ["", "Warnings:", *(f"  - {w}" for w in warnings)]
    lines += _feedback_lines(feedback)
    lines += [
        "",
        f"Audit chain: entry {entry.get('seq')} of {head_seq}, written {entry.get('created_at')}",
        f"  hash      {entry.get('entry_hash')}",
        f"  previous  {entry.get('prev_hash')}",
        "  (`audit verify` checks the whole chain; `audit show --json` prints the record)",
    ]
    return "\n".join(lines) + "\n"


def _field_lines(entry: Mapping[str, Any], payload: Mapping[str, Any]) -> list[str]:
    ruleset = payload.get("ruleset") or {}
    client = entry.get("client")
    status = (
        f"{payload.get('status', '')} (HTTP {payload.get('http_status', '-')}, {payload.get('latency_ms', '-')} ms)"
    )
    rows = [
        ("hook", payload.get("hook")),
        ("received", payload.get("received")),
        ("status", status),
        ("client", client if client else "(calls not authenticated)" if client == "" else "(not recorded)"),
        ("patient", payload.get("patient_ref")),
        ("rule set", f"version {ruleset.get('version', '-')}, digest {ruleset.get('digest', '-')}" if ruleset else ""),
        ("error", payload.get("error")),
    ]
    return [f"  {name:<9} {value}" for name, value in rows if value]


def _advice_lines(payload: Mapping[str, Any]) -> list[str]:
    cards = [c for c in payload.get("cards") or [] if isinstance(c, Mapping)]
    lines = ["", f"Advised ({len(cards)} card{'s' if len(cards) != 1 else ''}):" if cards else "Advised: no card"]
    for card in cards:
        lines.append(f"  [{card.get('indicator', '')}] {card.get('summary', '')}")
        for suggestion in card.get("suggestions") or []:
            if isinstance(suggestion, Mapping):
                lines.append(f"      suggestion: {suggestion.get('label', '')}")
        lines.append(f"      card {card.get('uuid', '')}")
    dose = payload.get("dose") or {}
    action = dose.get("action")
    if action == "change" and dose.get("daily_mg") is not None:
        interval = float(dose.get("interval_h") or 24)
        per = float(dose["daily_mg"]) * interval / 24
        lines.append(
            f"  Dose: change to {format_number(per)} mg every {format_number(interval)} h "
            f"({format_number(float(dose['daily_mg']))} mg/day)"
        )
    elif action:
        lines.append(f"  Dose: {action}")
    for step in dose.get("steps") or []:
        lines.append(f"    {step}")
    pk = payload.get("pk")
    if isinstance(pk, Mapping) and pk.get("cmin_pred") is not None:
        band = ""
        if pk.get("cmin_p05") is not None and pk.get("cmin_p95") is not None:
            band = f" (90% interval {float(pk['cmin_p05']):.0f}-{float(pk['cmin_p95']):.0f})"
        chance = ""
        if pk.get("p_target") is not None and pk.get("target") is not None:
            chance = f", P(trough >= {format_number(float(pk['target']))} ng/mL) {float(pk['p_target']):.0%}"
        lines.append(
            f"  PK ({pk.get('method')}, {pk.get('model')}): predicted steady-state trough "
            f"{float(pk['cmin_pred']):.0f} ng/mL{band}{chance}"
        )
    return lines


def _rule_lines(payload: Mapping[str, Any]) -> list[str]:
    fired = [f for f in payload.get("fired") or [] if isinstance(f, Mapping)]
    lines = ["", f"Rules that fired ({len(fired)}):"]
    for rule in fired:
        card = f"  -> card {rule['card']}" if rule.get("card") else ""
        lines.append(f"  {rule.get('rule')} v{rule.get('version')} ({rule.get('ruleset')}) {rule.get('title')}{card}")
    return lines


def _fact_lines(payload: Mapping[str, Any]) -> list[str]:
    """The facts the fired rules used, each once, with its value now and where it came from."""
    facts: Mapping[str, Any] = payload.get("facts") or {}
    sources: Mapping[str, Sequence[str]] = payload.get("fact_sources") or {}
    used: dict[str, Any] = {}
    for rule in payload.get("fired") or []:
        if isinstance(rule, Mapping):
            for name, value in (rule.get("facts_used") or {}).items():
                if value is not None:
                    used.setdefault(name, value)
    if not used:
        return []
    width = max(len(n) for n in used)
    lines = ["", f"Facts the fired rules used ({len(used)} of {len(facts)} recorded):"]
    for name in sorted(used):
        value = facts.get(name, used[name])
        where = "; ".join(sources.get(name) or []) or "derived"
        lines.append(f"  {name:<{width}}  {_value(value):<12} {where}")
    return lines


def _feedback_lines(feedback: Sequence[Mapping[str, Any]]) -> list[str]:
    if not feedback:
        return ["", "Feedback: none"]
    lines = ["", f"Feedback ({len(feedback)}):"]
    for entry in feedback:
        item = (entry.get("payload") or {}).get("feedback") or {}
        reason = ((item.get("overrideReason") or {}).get("reason") or {}).get("code")
        comment = (item.get("overrideReason") or {}).get("userComment")
        when = item.get("outcomeTimestamp") or entry.get("created_at")
        text = f"  entry {entry.get('seq')}: {item.get('outcome')} at {when} on card {item.get('card')}"
        text += f", reason {reason}" if reason else ""
        text += f', comment "{comment}"' if comment else ""
        lines.append(text)
    return lines


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_number(value)
    return str(value)
