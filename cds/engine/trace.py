"""Traceability: the guideline map (rules/guideline-map.yaml) and the recommendation -> rules -> tests matrix.

The map lists each recommendation of the sources (label sections, guideline statements, studies, local
policies) with the rules that implement it, or ``not_implemented`` with the reason. ``check_trace`` reports

* E019 - a rule that no recommendation of the map cites (every rule must trace to a source statement);
* E020 - a recommendation with neither rules nor a reason, one that names an unknown rule, or a map that
  cannot be read;
* E023 (warning) - a statement quoting a policy value the policy no longer has (cds/engine/stale_statements.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds.engine.diagnostics import Diagnostic
from cds.engine.model import Rule
from cds.engine.policy import Policy
from cds.engine.ruleset import RuleSet
from cds.engine.stale_statements import stale_statements
from cds.engine.yamlpos import Located, YamlSyntaxError, load_located

MAP_FILE = "guideline-map.yaml"
E_UNMAPPED_RULE = "E019"
E_BAD_RECOMMENDATION = "E020"
TRACE_CODES = {
    E_UNMAPPED_RULE: "rule that no recommendation of the guideline map cites",
    E_BAD_RECOMMENDATION: "recommendation without rules or a reason, naming an unknown rule, or an unreadable map",
}


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str = ""


@dataclass(frozen=True)
class Recommendation:
    id: str
    source: str
    statement: str
    level: str
    section: str = ""
    rules: tuple[str, ...] = ()
    not_implemented: str = ""
    line: int = 1


@dataclass(frozen=True)
class GuidelineMap:
    path: str
    sources: Mapping[str, Source]
    recommendations: tuple[Recommendation, ...]

    def citing(self, rule_id: str) -> tuple[Recommendation, ...]:
        return tuple(r for r in self.recommendations if rule_id in r.rules)


@dataclass(frozen=True)
class TraceRow:
    recommendation: Recommendation
    rule: Rule | None  # None: not implemented
    tests: tuple[str, ...]


def map_path(rule_set: RuleSet) -> Path:
    return Path(rule_set.root) / MAP_FILE


def read_guideline_map(path: Path) -> tuple[GuidelineMap | None, list[Diagnostic]]:
    """Parse the map; structural problems are E020 diagnostics (the map is None when unusable)."""
    shown = str(path)
    if not path.is_file():
        return None, [Diagnostic(shown, 1, 1, E_BAD_RECOMMENDATION, f"guideline map {shown} not found")]
    try:
        located = load_located(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        return None, [Diagnostic(shown, exc.line, exc.col, E_BAD_RECOMMENDATION, f"map cannot be parsed: {exc}")]
    data = located.data
    if not isinstance(data, dict) or not isinstance(data.get("recommendations"), list):
        return None, [Diagnostic(shown, 1, 1, E_BAD_RECOMMENDATION, "map needs a 'recommendations' list")]
    problems: list[Diagnostic] = []
    sources = _sources(data.get("sources") or {})
    recs = []
    for i, raw in enumerate(data["recommendations"]):
        rec, found = _recommendation(shown, located, i, raw, sources)
        problems += found
        if rec is not None:
            recs.append(rec)
    return GuidelineMap(shown, sources, tuple(recs)), problems


def _sources(raw: Any) -> dict[str, Source]:
    if not isinstance(raw, dict):
        return {}
    found = {}
    for key, body in raw.items():
        body = body if isinstance(body, dict) else {"title": str(body)}
        found[str(key)] = Source(str(key), str(body.get("title", key)), str(body.get("url", "")))
    return found


def _recommendation(
    file: str, located: Located, index: int, raw: Any, sources: Mapping[str, Source]
) -> tuple[Recommendation | None, list[Diagnostic]]:
    line, col = located.where(("recommendations", index))
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("id", "source", "statement")):
        message = f"recommendation #{index + 1} needs text fields id, source and statement"
        return None, [Diagnostic(file, line, col, E_BAD_RECOMMENDATION, message)]
    problems = []
    rules = raw.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        problems.append(Diagnostic(file, line, col, E_BAD_RECOMMENDATION, f"{raw['id']}: 'rules' must list rule ids"))
        rules = []
    if raw["source"] not in sources:
        problems.append(
            Diagnostic(file, line, col, E_BAD_RECOMMENDATION, f"{raw['id']}: unknown source {raw['source']!r}")
        )
    rec = Recommendation(
        id=raw["id"],
        source=raw["source"],
        statement=raw["statement"],
        level=str(raw.get("level", "")),
        section=str(raw.get("section", "")),
        rules=tuple(rules),
        not_implemented=str(raw.get("not_implemented") or "").strip(),
        line=line,
    )
    return rec, problems


def check_trace(rule_set: RuleSet, path: Path | None = None) -> list[Diagnostic]:
    """E019/E020 diagnostics for ``rule_set`` against its guideline map (default: next to facts.yaml)."""
    gmap, problems = read_guideline_map(path or map_path(rule_set))
    if gmap is None:
        return problems
    stale = stale_statements(rule_set.policy, gmap.recommendations, gmap.path)
    return sorted([*problems, *_unmapped_rules(rule_set, gmap), *_bad_recommendations(rule_set, gmap), *stale])


def check_statements(policy: Policy, path: Path) -> list[Diagnostic]:
    """Only E023 (statements quoting an old policy value): also while the rules themselves do not load."""
    gmap, _ = read_guideline_map(path)
    return [] if gmap is None else list(stale_statements(policy, gmap.recommendations, gmap.path))


def _all_rules(rule_set: RuleSet) -> list[Rule]:
    return [rule for f in rule_set.files for rule in f.rules]


def _unmapped_rules(rule_set: RuleSet, gmap: GuidelineMap) -> Iterable[Diagnostic]:
    cited = {rid for rec in gmap.recommendations for rid in rec.rules}
    for rule in _all_rules(rule_set):
        if rule.id not in cited:
            yield Diagnostic(
                rule.file, rule.line, 5, E_UNMAPPED_RULE, f"{rule.id} cites no recommendation of {gmap.path}"
            )


def _bad_recommendations(rule_set: RuleSet, gmap: GuidelineMap) -> Iterable[Diagnostic]:
    known = {rule.id for rule in _all_rules(rule_set)}
    seen: set[str] = set()
    for rec in gmap.recommendations:
        if rec.id in seen:
            yield Diagnostic(gmap.path, rec.line, 5, E_BAD_RECOMMENDATION, f"duplicate recommendation id {rec.id}")
        seen.add(rec.id)
        if not rec.rules and not rec.not_implemented:
            message = f"{rec.id} has neither rules nor a not_implemented reason"
            yield Diagnostic(gmap.path, rec.line, 5, E_BAD_RECOMMENDATION, message)
        for rid in rec.rules:
            if rid not in known:
                yield Diagnostic(gmap.path, rec.line, 5, E_BAD_RECOMMENDATION, f"{rec.id} names unknown rule {rid}")


def trace_rows(rule_set: RuleSet, gmap: GuidelineMap) -> list[TraceRow]:
    by_id = {rule.id: rule for rule in _all_rules(rule_set)}
    rows = []
    for rec in gmap.recommendations:
        if not rec.rules:
            rows.append(TraceRow(rec, None, ()))
        for rid in rec.rules:
            rule = by_id.get(rid)
            rows.append(TraceRow(rec, rule, tuple(t.name for t in rule.tests) if rule else ()))
    return rows


def render_trace_markdown(rule_set: RuleSet, gmap: GuidelineMap, problems: Sequence[Diagnostic] = ()) -> str:
    """The committee's matrix: one line per recommendation and implementing rule, with the rule's tests."""
    rows = trace_rows(rule_set, gmap)
    implemented = sum(1 for rec in gmap.recommendations if rec.rules)
    lines = [
        "# Traceability matrix: recommendation -> rules -> tests",
        "",
        f"Rule set `{rule_set.version}` (digest `{rule_set.digest[:12]}`); map `{gmap.path}`.",
        f"{len(gmap.recommendations)} recommendations: {implemented} implemented, "
        f"{len(gmap.recommendations) - implemented} not implemented (with the reason).",
        "",
        "| Recommendation | Source | Level | Rule | Tests |",
        "|---|---|---|---|---|",
    ]
    previous = ""
    for row in rows:
        rec = row.recommendation
        first = rec.id != previous
        previous = rec.id
        source = gmap.sources.get(rec.source)
        where = _cell(f"{source.title if source else rec.source} {rec.section}".strip()) if first else ""
        what = f"**{rec.id}** {_cell(rec.statement)}" if first else ""
        level = rec.level if first else ""
        if row.rule is None:
            lines.append(f"| {what} | {where} | {level} | *not implemented* | {_cell(rec.not_implemented)} |")
            continue
        rule_text = f"{row.rule.id} ({_cell(row.rule.title)})"
        tests = f"{len(row.tests)}: " + "; ".join(_cell(t) for t in row.tests)
        lines.append(f"| {what} | {where} | {level} | {rule_text} | {tests} |")
    if problems:
        lines += ["", "## Problems", ""] + [f"- `{p}`" for p in problems]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
