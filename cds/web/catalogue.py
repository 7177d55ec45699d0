"""The rule catalogue page for pharmacists: every active rule with its evidence, tests, last change and YAML,
generated from the loaded rule files and searchable by text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds.engine.model import Rule, RuleFile
from cds.engine.render import format_value
from cds.engine.ruleset import RULES_SUBDIR, RuleSet
from cds.web.explain import EvidenceRow, evidence_row


@dataclass(frozen=True)
class RuleTestRow:
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
    ruleset_title: str
    file: str
    hooks: str
    evidence: tuple[EvidenceRow, ...]
    tests: tuple[RuleTestRow, ...]
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
    entries = []
    for rule_file in active:
        source = _Source.read(rule_file, rule_set)
        entries += [_entry(rule, rule_file, source) for rule in rule_file.rules]
    return Catalogue(
        version=rule_set.version,
        digest=rule_set.digest,
        total=len(entries),
        files=len(active),
        entries=tuple(e for e in entries if e.matches(words)),
    )


def _entry(rule: Rule, rule_file: RuleFile, source: _Source) -> RuleEntry:
    evidence = tuple(evidence_row(vars(e)) for e in rule.evidence)
    tests = tuple(RuleTestRow(t.name, t.hook, _expects(t.expect)) for t in rule.tests)
    text = source.rule_yaml(rule)
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
        ruleset_title=rule_file.meta.title,
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
        parts.append("dose " + ", ".join(f"{k} {_shown(v)}" for k, v in expect.dose.items()))
    if expect.derived:
        parts.append("derives " + ", ".join(f"{k} = {_shown(v)}" for k, v in expect.derived.items()))
    if expect.absent:
        parts.append("leaves " + ", ".join(expect.absent) + " absent")
    return "; ".join(parts)


def _shown(value: Any) -> str:
    return format_value(value) if isinstance(value, bool | int | float | str) else str(value)


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


@dataclass(frozen=True)
class _Source:
    """A rule file as it is on disk now: its lines and its parsed rules by id (empty if unreadable)."""

    lines: tuple[str, ...]
    rules: Mapping[str, Any]

    @classmethod
    def read(cls, rule_file: RuleFile, rule_set: RuleSet) -> _Source:
        name = Path(rule_file.path).name
        root = Path(rule_set.root)
        for candidate in (root / RULES_SUBDIR / name, root / name, Path(rule_file.path)):
            if candidate.is_file():
                text = candidate.read_text(encoding="utf-8")
                try:
                    parsed = yaml.load(text, Loader=_LOADER)
                except yaml.YAMLError:
                    parsed = None
                listed = parsed.get("rules") if isinstance(parsed, dict) else None
                rules = {str(r.get("id")): r for r in listed or [] if isinstance(r, dict)}
                return cls(tuple(text.splitlines()), rules)
        return cls((), {})

    def rule_yaml(self, rule: Rule) -> str:
        """The rule as written (from its ``- id:`` line to the next rule).

        The file is read now but the rules were loaded earlier: the text is shown only if the file still holds
        the loaded rule; otherwise (edited since, or gone) the loaded rule is shown as a YAML dump.
        """
        on_disk = self.rules.get(rule.id)
        if on_disk is not None and _plain(on_disk) == _plain(rule.source):
            lines = self.lines
            start = next(i for i, line in enumerate(lines) if _id_of(line) == rule.id)
            stop = next((i for i in range(start + 1, len(lines)) if _ID_LINE.match(lines[i])), len(lines))
            block = list(lines[start:stop])
            while block and (not block[-1].strip() or block[-1].lstrip().startswith("#")):
                block.pop()
            indent = len(block[0]) - len(block[0].lstrip())
            return "\n".join(line[indent:] if line[:indent].isspace() else line for line in block)
        return yaml.safe_dump([dict(rule.source)], sort_keys=False, allow_unicode=True, width=100).rstrip()


def rule_yaml(rule: Rule, rule_file: RuleFile, rule_set: RuleSet) -> str:
    return _Source.read(rule_file, rule_set).rule_yaml(rule)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ID_LINE = re.compile(r"^\s*- id:\s*(\S+)\s*$")


def _id_of(line: str) -> str:
    match = _ID_LINE.match(line)
    return match.group(1).strip("'\"") if match else ""


def _plain(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
