"""The explanation of one decision, built from its audit record alone.

Everything shown comes from the stored payload (cards, fired rules with the fact values they used and their
FHIR sources, dose steps, PK summary and dose table, rule set digest) and the entry's chain position. Rule titles
and evidence come from the record when it holds them, else from the card the rule produced, else from the
loaded rule set only when it still has the same rule at the same version; otherwise the page says the rule
changed since. Nothing here puts patient data in a URL.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from cds.engine.model import Rule
from cds.engine.render import format_value
from cds.engine.ruleset import RuleSet
from cds.errors import CdsError
from cds.numbers import format_number
from cds.web.markdown import render_markdown
from cds.web.plots import plot_available, replay

_SOURCE = re.compile(r"^(?P<ref>.*?) \((?P<date>[^()]*)\)$")
INDICATORS = {"critical": "Critical", "warning": "Warning", "info": "Info"}


@dataclass(frozen=True)
class Source:
    reference: str
    date: str


@dataclass(frozen=True)
class FactRow:
    name: str
    value: str
    unit: str
    origin: str  # "FHIR", "derived by the rules", "PK estimate", "not recorded"
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class EvidenceRow:
    citation: str
    level: str = ""
    url: str = ""
    section: str = ""
    note: str = ""


@dataclass(frozen=True)
class FiredRow:
    rule: str
    title: str
    version: str
    ruleset: str
    evidence: tuple[EvidenceRow, ...]
    facts: tuple[FactRow, ...]
    provenance: str = ""  # where title and evidence came from when not from the record itself
    review_note: str = ""  # the rule's note for reviewers (rule set at the decision's version only)


@dataclass(frozen=True)
class RuleRef:
    rule: str
    title: str
    ruleset: str
    version: str


@dataclass(frozen=True)
class CardView:
    summary: str
    indicator: str
    indicator_label: str
    detail: Markup
    source_label: str
    source_url: str
    suggestions: tuple[str, ...]
    # what the card builder leaves off the card, shown here: the rules behind it, every fact they read (and the
    # facts behind derived ones) with sources and dates, the dose composition when the card is about the dose,
    # and the evidence with its notes
    rules: tuple[RuleRef, ...] = ()
    facts: tuple[FactRow, ...] = ()
    dose_steps: tuple[str, ...] = ()
    evidence: tuple[EvidenceRow, ...] = ()


@dataclass(frozen=True)
class DoseRow:
    regimen: str
    trough: str
    p_target: str
    current: bool
    proposed: bool


@dataclass(frozen=True)
class PkView:
    method: str
    estimate: str  # the one estimate the headline and the dose table show, named
    model: str
    citation: str
    target: str
    trough: str
    p_target: str
    loglinear: str
    parameters: str
    proposed: str
    out_of_domain: bool
    rows: tuple[DoseRow, ...]


@dataclass(frozen=True)
class Chain:
    seq: int
    entry_hash: str
    prev_hash: str
    created_at: str
    total: int | None = None


@dataclass(frozen=True)
class Explanation:
    hook_instance: str
    service: str
    hook: str
    received: str
    status: str
    ruleset_version: str
    ruleset_digest: str
    cards: tuple[CardView, ...]
    fired: tuple[FiredRow, ...]
    dose_action: str
    dose_summary: str
    dose_steps: tuple[str, ...]
    dose_history: str
    pk: PkView | None
    pk_note: str
    plot_note: str | None  # None: a plot can be drawn
    plot_alt: str
    warnings: tuple[str, ...]
    chain: Chain | None
    feedback: tuple[str, ...] = field(default=())


def build_explanation(
    entry: Mapping[str, Any],
    rule_set: RuleSet | None = None,
    *,
    total_entries: int | None = None,
    feedback: Sequence[Mapping[str, Any]] = (),
) -> Explanation:
    """The page model for an audit entry (``AuditStore.decision``) or ``{"payload": ...}`` for an offline run."""
    payload: Mapping[str, Any] = entry["payload"]
    facts: Mapping[str, Any] = payload.get("facts") or {}
    sources: Mapping[str, Sequence[str]] = payload.get("fact_sources") or {}
    cards = [c for c in payload.get("cards") or [] if isinstance(c, Mapping)]
    units = _units(rule_set)
    fired_raw = [f for f in payload.get("fired") or [] if isinstance(f, Mapping)]
    fired = tuple(_fired(f, cards, rule_set, facts, sources, units) for f in fired_raw)
    links = cited_urls(rule_set, fired)
    pk = payload.get("pk") if isinstance(payload.get("pk"), Mapping) else None
    dose = payload.get("dose") or {}
    ruleset = payload.get("ruleset") or {}
    chain = None
    if "seq" in entry:
        chain = Chain(
            int(entry["seq"]),
            str(entry["entry_hash"]),
            str(entry["prev_hash"]),
            str(entry["created_at"]),
            total_entries,
        )
    return Explanation(
        hook_instance=str(entry.get("hook_instance") or payload.get("hookInstance") or ""),
        service=str(payload.get("service", "")),
        hook=str(payload.get("hook", "")),
        received=str(payload.get("received", "")),
        status=str(payload.get("status", "")),
        ruleset_version=str(ruleset.get("version", "")),
        ruleset_digest=str(ruleset.get("digest", "")),
        cards=tuple(_card(c, links, _Behind(fired_raw, fired, facts, sources, units, rule_set, dose)) for c in cards),
        fired=fired,
        dose_action=str(dose.get("action", "")),
        dose_summary=_dose_summary(dose),
        dose_steps=tuple(str(s) for s in dose.get("steps") or []),
        dose_history=_dose_history(payload.get("dose_history")),
        pk=_pk(pk, facts, dose) if pk else None,
        pk_note="" if pk else "No PK estimate was made for this decision (see the warnings for why).",
        plot_note=plot_available(payload),
        plot_alt=plot_alt(payload),
        warnings=tuple(str(w) for w in payload.get("warnings") or []),
        chain=chain,
        feedback=tuple(_feedback(f) for f in feedback),
    )


# --- cards -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Behind:
    """What a card view needs to show what lies behind the card."""

    raw: Sequence[Mapping[str, Any]]  # the recorded fired rules
    fired: Sequence[FiredRow]  # the same, as page rows
    facts: Mapping[str, Any]
    sources: Mapping[str, Sequence[str]]
    units: Mapping[str, str]
    rule_set: RuleSet | None
    dose: Mapping[str, Any]


def _card(card: Mapping[str, Any], links: frozenset[str], behind: _Behind) -> CardView:
    indicator = str(card.get("indicator", "info"))
    source = card.get("source") or {}
    suggestions = [s for s in card.get("suggestions") or [] if isinstance(s, Mapping)]
    rows = rules_behind(card, behind.raw, behind.rule_set)
    rules = [behind.fired[i] for i in rows]
    evidence: dict[tuple[str, str, str], EvidenceRow] = {}
    for rule in rules:
        for ev in rule.evidence:
            evidence.setdefault((ev.citation, ev.url, ev.section), ev)
    return CardView(
        summary=str(card.get("summary", "")),
        indicator=indicator if indicator in INDICATORS else "info",
        indicator_label=INDICATORS.get(indicator, indicator),
        detail=render_markdown(str(card.get("detail", "")), links),
        source_label=str(source.get("label", "")),
        source_url=_safe_url(str(source.get("url", ""))),
        suggestions=tuple(str(s.get("label", "")) for s in suggestions),
        rules=tuple(RuleRef(r.rule, r.title, r.ruleset, r.version) for r in rules),
        facts=tuple(
            _fact(name, value, behind.sources, behind.units)
            for name, value in facts_behind([behind.raw[i] for i in rows], behind.raw, behind.rule_set, behind.facts)
        ),
        dose_steps=_dose_steps(card, suggestions, [r.rule for r in rules], behind.dose),
        evidence=tuple(evidence.values()),
    )


def rules_behind(card: Mapping[str, Any], fired: Sequence[Mapping[str, Any]], rule_set: RuleSet | None) -> list[int]:
    """Positions of the fired rules a card came from: its topic code is the rule id (one card per rule) or the
    clinical problem the rules address (one card per topic; the topic as recorded, else as the rule declares)."""
    code = str(((card.get("source") or {}).get("topic") or {}).get("code", ""))
    if not code:
        return []
    return [i for i, f in enumerate(fired) if code in (str(f.get("rule", "")), _topic(f, rule_set))]


def _topic(fired: Mapping[str, Any], rule_set: RuleSet | None) -> str:
    """The card the rule's finding was shown on: as recorded (a level finding joins the dose card when the dose
    changes), else the rule's own topic."""
    if fired.get("card"):
        return str(fired["card"])
    if fired.get("topic"):
        return str(fired["topic"])
    rule = _current_rule(str(fired.get("rule", "")), rule_set)
    return str(rule.card.topic or "") if rule is not None and rule.card is not None else ""


def facts_behind(
    rules: Sequence[Mapping[str, Any]],
    fired: Sequence[Mapping[str, Any]],
    rule_set: RuleSet | None,
    facts: Mapping[str, Any],
) -> list[tuple[str, Any]]:
    """The facts the rules read, followed by the facts behind any derived fact among them (as the cards showed
    them before the card builder moved them here), each with the value the rules saw."""
    derived_by: dict[str, Mapping[str, Any]] = {}
    for f in fired:
        for name in _derived(f, rule_set):
            derived_by.setdefault(name, f)
    values: dict[str, Any] = {}
    pending = [item for r in rules for item in (r.get("facts_used") or {}).items()]
    while pending:
        name, value = pending.pop(0)
        if name in values:
            continue
        values[name] = value if value is not None else facts.get(name)
        if name in derived_by:
            pending.extend((derived_by[name].get("facts_used") or {}).items())
    return list(values.items())


def _derived(fired: Mapping[str, Any], rule_set: RuleSet | None) -> list[str]:
    """The facts a fired rule set: as recorded, else as its rule (at the same version) declares."""
    if isinstance(fired.get("derived"), Mapping | list):
        return [str(name) for name in fired["derived"]]
    rule = _current_rule(str(fired.get("rule", "")), rule_set)
    if rule is None or rule.ruleset_version != str(fired.get("version", "")):
        return []
    return [d.fact for d in rule.derive]


def _current_rule(rule_id: str, rule_set: RuleSet | None) -> Rule | None:
    if rule_set is None:
        return None
    try:
        return rule_set.rule(rule_id)
    except KeyError:
        return None


def _dose_steps(
    card: Mapping[str, Any], suggestions: Sequence[Mapping[str, Any]], rules: Sequence[str], dose: Mapping[str, Any]
) -> tuple[str, ...]:
    """The composer's steps, on a card about the dose: topic ``dose``, a suggestion that changes or removes the
    order, or one of its rules named in a step."""
    steps = tuple(str(s) for s in dose.get("steps") or [])
    if dose.get("action") not in ("change", "withhold") or not steps:
        return ()
    code = ((card.get("source") or {}).get("topic") or {}).get("code")
    changes_order = any(
        isinstance(a, Mapping) and a.get("type") in ("update", "delete")
        for s in suggestions
        for a in s.get("actions") or []
    )
    named = any(f"({rule})" in step for rule in rules for step in steps)
    return steps if code == "dose" or changes_order or named else ()


def cited_urls(rule_set: RuleSet | None, fired: Sequence[FiredRow]) -> frozenset[str]:
    """The http(s) URLs rule authors cite (loaded rule set and recorded evidence): the only links card detail
    may carry on this page."""
    urls = {ev.url for row in fired for ev in row.evidence}
    if rule_set is not None:
        urls.update(e.url for f in rule_set.files for rule in f.rules for e in rule.evidence)
    return frozenset(u for u in urls if _safe_url(u))


# --- fired rules -----------------------------------------------------------------------------------------


def _fired(
    fired: Mapping[str, Any],
    cards: Sequence[Mapping[str, Any]],
    rule_set: RuleSet | None,
    facts: Mapping[str, Any],
    sources: Mapping[str, Sequence[str]],
    units: Mapping[str, str],
) -> FiredRow:
    rule_id, version = str(fired.get("rule", "")), str(fired.get("version", ""))
    title, evidence, provenance = _rule_text(fired, cards, rule_set)
    used = fired.get("facts_used") or {}
    return FiredRow(
        rule=rule_id,
        title=title,
        version=version,
        ruleset=str(fired.get("ruleset", "")),
        evidence=evidence,
        facts=tuple(_fact(name, value, sources, units) for name, value in used.items()),
        provenance=provenance,
        review_note=_review_note(rule_id, version, rule_set),
    )


def _review_note(rule_id: str, version: str, rule_set: RuleSet | None) -> str:
    """Only from the rule as it was at the decision: a later note may describe a different rule text."""
    if rule_set is None:
        return ""
    try:
        rule = rule_set.rule(rule_id)
    except KeyError:
        return ""
    return rule.review_note if rule.ruleset_version == version else ""


def _rule_text(
    fired: Mapping[str, Any], cards: Sequence[Mapping[str, Any]], rule_set: RuleSet | None
) -> tuple[str, tuple[EvidenceRow, ...], str]:
    """Title and evidence: recorded > the card the rule made > the loaded rule at the same version."""
    rule_id, version = str(fired.get("rule", "")), str(fired.get("version", ""))
    title = str(fired.get("title") or "")
    evidence = tuple(evidence_row(e) for e in fired.get("evidence") or [] if isinstance(e, Mapping))
    if title and evidence:
        return title, evidence, ""
    current = None
    if rule_set is not None:
        try:
            current = rule_set.rule(rule_id)
        except KeyError:
            current = None
    same = current is not None and current.ruleset_version == version
    if same and current is not None:
        return title or current.title, evidence or tuple(evidence_row(vars(e)) for e in current.evidence), ""
    card = next((c for c in cards if ((c.get("source") or {}).get("topic") or {}).get("code") == rule_id), None)
    if card is not None:
        source = card.get("source") or {}
        title = title or str((source.get("topic") or {}).get("display", ""))
        if not evidence and source.get("url"):
            evidence = (EvidenceRow(citation=str(source.get("label", "")), url=_safe_url(str(source["url"]))),)
    if title and evidence:
        return title, evidence, "Title and evidence as shown on the card this rule produced."
    if current is not None:
        note = (
            f"The rule has changed since this decision (now version {current.ruleset_version}); "
            "its current title and evidence are shown for orientation only."
        )
        return title or current.title, evidence or tuple(evidence_row(vars(e)) for e in current.evidence), note
    return title or "(title not recorded)", evidence, "This rule is no longer in the rule set; only its id is recorded."


def evidence_row(raw: Mapping[str, Any]) -> EvidenceRow:
    return EvidenceRow(
        citation=str(raw.get("citation", "")),
        level=str(raw.get("level", "") or ""),
        url=_safe_url(str(raw.get("url", "") or "")),
        section=str(raw.get("section", "") or ""),
        note=" ".join(str(raw.get("note", "") or "").split()),
    )


def _fact(name: str, value: Any, sources: Mapping[str, Sequence[str]], units: Mapping[str, str]) -> FactRow:
    if value is None:
        shown = "not recorded"
    else:
        shown = format_value(value) if isinstance(value, bool | int | float | str) else str(value)
    unit = units.get(name, "") if value is not None and not isinstance(value, bool | str) else ""
    found = tuple(_source(s) for s in sources.get(name) or [])
    if found:
        origin = "FHIR"
    elif value is None:
        origin = "absent from the record"
    elif name.startswith("pk."):
        origin = "PK estimate"
    elif name in sources:
        origin = "no source resource"
    else:
        origin = "derived by the rules"
    return FactRow(name, shown, unit if unit not in ("1", "") else "", origin, found)


def _source(text: str) -> Source:
    match = _SOURCE.match(str(text))
    if match is None:
        return Source(str(text), "")
    return Source(match["ref"], match["date"])


def _units(rule_set: RuleSet | None) -> dict[str, str]:
    if rule_set is None:
        return {}
    return {name: spec.unit for name, spec in rule_set.vocabulary.facts.items() if spec.unit}


# --- dose and PK -----------------------------------------------------------------------------------------


def _dose_summary(dose: Mapping[str, Any]) -> str:
    action = dose.get("action")
    if action == "change" and dose.get("daily_mg") is not None:
        return f"Change to {_regimen(dose['daily_mg'], dose.get('interval_h') or 24)}."
    if action == "withhold":
        return "Withhold imatinib."
    if action in (None, "", "none", "keep"):
        return "No dose change proposed."
    return f"{action}."


def _dose_history(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return ""
    return f"{raw.get('source', '')}: {raw.get('note', '')}".strip(": ")


def _pk(pk: Mapping[str, Any], facts: Mapping[str, Any], dose: Mapping[str, Any]) -> PkView:
    """The PK section. One estimate is shown throughout: the trough of the point estimate (``cmin_pred``, the
    MAP individual or the typical patient a priori), in the headline and in every row of the dose table, each
    with the 90 % interval of the parameter-uncertainty draws. The draws' median, which differs from it (the
    trough is not linear in the parameters), is not shown."""
    current = (facts.get("regimen.daily_mg"), facts.get("regimen.interval_h"))
    proposed_dose = (dose.get("daily_mg"), dose.get("interval_h")) if dose.get("action") == "change" else None
    table = [row for row in pk.get("dose_table") or [] if isinstance(row, Mapping)]
    points = _row_points(pk, table, current)
    rows = []
    for row, point in zip(table, points, strict=True):
        key = (row.get("daily_mg"), row.get("interval_h"))
        rows.append(
            DoseRow(
                regimen=_regimen(row["daily_mg"], row["interval_h"]),
                trough=f"{_conc(point)} ng/mL ({_conc(row.get('cmin_p05'))}-{_conc(row.get('cmin_p95'))})",
                p_target=_pct(row.get("p_target")),
                current=_same(key, current),
                proposed=proposed_dose is not None and _same(key, proposed_dose),
            )
        )
    model = str(pk.get("model", ""))
    band = ""
    if pk.get("cmin_p05") is not None and pk.get("cmin_p95") is not None:
        band = f" (90% interval {_conc(pk['cmin_p05'])}-{_conc(pk['cmin_p95'])})"
    proposed = pk.get("proposed_daily_mg")
    method = str(pk.get("method", ""))
    return PkView(
        method=_method(method),
        estimate=ESTIMATE_NAMES.get(method, method),
        model=model,
        citation=_citation(model),
        target=f"{_num(pk.get('target'))} ng/mL",
        trough=f"{_conc(pk.get('cmin_pred'))} ng/mL{band}",
        p_target=_pct(pk.get("p_target")),
        loglinear=f"{_num(pk['loglinear_cmin'])} ng/mL" if pk.get("loglinear_cmin") is not None else "not applicable",
        parameters=f"CL {_num(pk.get('cl'))} L/h, V {_num(pk.get('v'))} L",
        proposed=f"{_num(proposed)} mg/day" if proposed else "none on the ladder reaches the threshold",
        out_of_domain=bool(pk.get("out_of_domain")),
        rows=tuple(rows),
    )


ESTIMATE_NAMES = {
    "map": "individual estimate (MAP)",
    "apriori": "typical-patient estimate (a priori)",
    "measured-trough": "measured trough",
    "loglinear": "log-linear extrapolation",
}


def _row_points(
    pk: Mapping[str, Any], table: Sequence[Mapping[str, Any]], current: tuple[Any, Any]
) -> list[float | None]:
    """Each row's trough of the point estimate. Decisions recorded before the rows carried it (``cmin_pred``
    per row) get it from the estimate re-run on their recorded inputs (deterministic); without inputs, rows on
    the current dosing interval are scaled from the headline (the trough is proportional to the dose), other
    rows show none."""
    if all(row.get("cmin_pred") is not None for row in table):
        return [float(row["cmin_pred"]) for row in table]
    rerun: dict[tuple[float, float], float] = {}
    if pk.get("inputs"):
        try:
            estimate = replay(pk["inputs"]).estimate
            rerun = {(o.daily_mg, o.interval_h): o.cmin_pred_ng_ml for o in estimate.dose_table}
        except (CdsError, ValueError):
            rerun = {}
    points: list[float | None] = []
    for row in table:
        key = (float(row["daily_mg"]), float(row["interval_h"]))
        points.append(rerun[key] if key in rerun else _scaled_point(pk.get("cmin_pred"), current, key))
    return points


def _scaled_point(cmin_pred: Any, current: tuple[Any, Any], key: tuple[float, float]) -> float | None:
    """The headline trough (at the current regimen) scaled to another daily dose on the same interval."""
    try:
        daily, interval = float(current[0]), float(current[1] or 24)
        cmin = float(cmin_pred)
    except (TypeError, ValueError):
        return None
    if interval != key[1] or daily <= 0:
        return None
    return cmin * key[0] / daily


def _method(method: str) -> str:
    return {
        "map": "Bayesian MAP fit to the measured level(s) (individual estimate)",
        "apriori": "a-priori (population) prediction from covariates only",
    }.get(method, method)


def _citation(model: str) -> str:
    if not model:
        return ""
    try:
        from cds.pk import load_model

        return " ".join(load_model(model).citation.split())
    except Exception:  # a model file removed since: the name is still shown
        return "(model file not available)"


def plot_alt(payload: Mapping[str, Any]) -> str:
    """Alt text for the concentration-time plot, from the recorded numbers."""
    pk = payload.get("pk")
    if not isinstance(pk, Mapping):
        return ""
    facts = payload.get("facts") or {}
    parts = [
        "Concentration-time plot of imatinib (ng/mL) against days relative to the decision:",
        f"measured level {_num(facts['level.conc'])} ng/mL;" if facts.get("level.conc") is not None else "",
        f"individual curve at the current regimen with predicted steady-state trough {_num(pk.get('cmin_pred'))} ng/mL",
    ]
    if pk.get("cmin_p05") is not None:
        parts.append(f"and its 5-95 % band ({_num(pk['cmin_p05'])}-{_num(pk['cmin_p95'])} ng/mL at the trough);")
    parts.append("the population curve for a typical patient;")
    parts.append(f"the target line at {_num(pk.get('target'))} ng/mL")
    from cds.web.plots import proposed_regimen

    proposed = proposed_regimen(payload)
    if proposed is not None:
        parts.append(f"and the predicted curve after switching to {_regimen(*proposed)}")
    return " ".join(p for p in parts if p) + "."


def _feedback(entry: Mapping[str, Any]) -> str:
    item = (entry.get("payload") or {}).get("feedback") or {}
    outcome = item.get("outcome", "")
    reason = ((item.get("overrideReason") or {}).get("reason") or {}).get("display", "")
    when = item.get("outcomeTimestamp", entry.get("created_at", ""))
    return f"{outcome} {when}" + (f" ({reason})" if reason else "")


# --- small formatting helpers ----------------------------------------------------------------------------


def _same(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
    try:
        return float(a[0]) == float(b[0]) and float(a[1] or 24) == float(b[1] or 24)
    except (TypeError, ValueError):
        return False


def _regimen(daily: Any, interval: Any) -> str:
    daily_f, interval_f = float(daily), float(interval or 24)
    per_dose = daily_f * interval_f / 24
    return f"{format_number(per_dose)} mg every {format_number(interval_f)} h ({format_number(daily_f)} mg/day)"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return format_number(float(value))


def _conc(value: Any) -> str:
    """A concentration in ng/mL: whole numbers (the assay does not resolve less)."""
    return "-" if value is None else f"{float(value):.0f}"


def _pct(value: Any) -> str:
    if value is None:
        return "-"
    pct = float(value) * 100
    if 0 < pct < 1:
        return "<1%"
    if 99 < pct < 100:
        return ">99%"
    return f"{pct:.0f}%"


def _safe_url(url: str) -> str:
    """Only http(s) links become hrefs (rule files are reviewed, but a javascript: URL is never a link)."""
    return url if url.startswith(("https://", "http://")) else ""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
