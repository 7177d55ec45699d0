"""The rule catalogue page for pharmacists: every active rule with its evidence, tests, last change and YAML,
generated from the loaded rule files and searchable by text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds.engine.model import Rule, RuleFile
from cds.engine.ruleset import RULES_SUBDIR, RuleSet
from cds.web.explain import EvidenceRow, evidence_row


@dataclass(frozen=True)
class TestRow:
    name: str
    hook: str
    expects: str


@dataclass(frozen=True)
class RuleEntry:
    id: str
    title: str
    status: str
    version: str
    ruleset: str
    file: str
    hooks: str
    evidence: tuple[EvidenceRow, ...]
    tests: tuple[TestRow, ...]
    last_change: str
    yaml: str
    haystack: str  # lower-case text the search looks in

    def matches(self, words: Sequence[str]) -> bool:
        return all(word in self.haystack for word in words)


@dataclass(frozen=True)
class Catalogue:
    version: str
    digest: str
    total: int
    files: int
    entries: tuple[RuleEntry, ...]


def build_catalogue(rule_set: RuleSet, query: str = "") -> Catalogue:
    """The active rules, those matching every word of ``query`` (case-insensitive) when one is given."""
    words = query.lower().split()
    active = [f for f in rule_set.files if f.meta.status == "active"]
    entries = [_entry(rule, f, rule_set) for f in active for rule in f.rules]
    return Catalogue(
        version=rule_set.version,
        digest=rule_set.digest,
        total=len(entries),
        files=len(active),
        entries=tuple(e for e in entries if e.matches(words)),
    )


def _entry(rule: Rule, rule_file: RuleFile, rule_set: RuleSet) -> RuleEntry:
    evidence = tuple(evidence_row(vars(e)) for e in rule.evidence)
    tests = tuple(TestRow(t.name, t.hook, _expects(t.expect)) for t in rule.tests)
    text = rule_yaml(rule, rule_file, rule_set)
    last = last_change(rule, rule_file)
    haystack = " ".join(
        [rule.id, rule.title, rule_file.meta.title, rule.ruleset_id, last, text]
        + [f"{e.citation} {e.note} {e.section}" for e in evidence]
        + [t.name for t in tests]
    ).lower()
    return RuleEntry(
        id=rule.id,
        title=rule.title,
        status=rule_file.meta.status,
        version=rule.ruleset_version,
        ruleset=rule.ruleset_id,
        file=f"{Path(rule_file.path).name}:{rule.line}",
        hooks=", ".join(rule.hooks),
        evidence=evidence,
        tests=tests,
        last_change=last,
        yaml=text,
        haystack=haystack,
    )


def _expects(expect: Any) -> str:
    parts = []
    if expect.fired:
        parts.append("fires " + ", ".join(expect.fired))
    if expect.not_fired:
        parts.append("does not fire " + ", ".join(expect.not_fired))
    if expect.dose:
        parts.append("dose " + ", ".join(f"{k} {v}" for k, v in expect.dose.items()))
    if expect.derived:
        parts.append("derives " + ", ".join(f"{k} = {v}" for k, v in expect.derived.items()))
    if expect.absent:
        parts.append("leaves " + ", ".join(expect.absent) + " absent")
    return "; ".join(parts)


def last_change(rule: Rule, rule_file: RuleFile) -> str:
    """The newest change-log entry naming the rule, else the file's newest entry."""
    raw = rule_file.meta.raw.get("change_log")
    log = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []
    if not log:
        return ""
    naming = [c for c in log if rule.id in str(c.get("change", ""))]
    entry = (naming or log)[-1]
    text = f"{entry.get('version', '')} ({entry.get('date', '')}): {entry.get('change', '')}"
    return text + (f" - why: {entry['why']}" if entry.get("why") else "")


def rule_yaml(rule: Rule, rule_file: RuleFile, rule_set: RuleSet) -> str:
    """The rule as written in its file (from its ``- id:`` line to the next rule); a dump if the file is gone."""
    lines = _file_lines(rule_file, rule_set)
    if lines is not None and 0 < rule.line <= len(lines):
        later = [r.line for r in rule_file.rules if r.line > rule.line] + [n for _, n in rule_file.ids if n > rule.line]
        stop = min(later, default=len(lines) + 1)
        block = lines[rule.line - 1 : stop - 1]
        while block and (not block[-1].strip() or block[-1].lstrip().startswith("#")):
            block.pop()
        indent = len(block[0]) - len(block[0].lstrip()) if block else 0
        return "\n".join(line[indent:] if line[:indent].isspace() else line for line in block)
    return yaml.safe_dump([dict(rule.source)], sort_keys=False, allow_unicode=True, width=100).rstrip()


def _file_lines(rule_file: RuleFile, rule_set: RuleSet) -> list[str] | None:
    name = Path(rule_file.path).name
    root = Path(rule_set.root)
    for candidate in (root / RULES_SUBDIR / name, root / name, Path(rule_file.path)):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8").splitlines()
    return None
