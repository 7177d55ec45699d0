"""The rule catalogue page, a review document for the P&T committee: per active rule its condition and effects in
words (policy values resolved), evidence, tests, the guideline recommendations it implements, its own changes
and its approval; the policy table. Generated from the loaded rule files, searchable by text, printable."""

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
from cds.engine.trace import GuidelineMap, map_path, read_guideline_map
from cds.engine.wording import Condition, PolicyValue, Wording, policy_names
from cds.web.explain import EvidenceRow, evidence_row


@dataclass(frozen=True)
class RuleTestRow:
    name: str
    hook: str
    expects: str


@dataclass(frozen=True)
class RecommendationRow:
    id: str
    source: str
    url: str
    section: str
    level: str
    statement: str


@dataclass(frozen=True)
class Approval:
    by: str
    date: str
    effective_from: str
    review_by: str
    owner: str

    @property
    def pending(self) -> bool:
        return not self.by or "pending" in self.by.lower()


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
    when: Condition
    then: tuple[str, ...]
    policies: tuple[PolicyValue, ...]  # the policy values the rule uses, resolved
    evidence: tuple[EvidenceRow, ...]
    tests: tuple[RuleTestRow, ...]
    implements: tuple[RecommendationRow, ...]
    changes: tuple[str, ...]  # change-log entries of its file that name the rule
    approval: Approval
    review_note: str
    yaml: str
    haystack: str  # lower-case text the search looks in

    def matches(self, words: Sequence[str]) -> bool:
        return all(word in self.haystack for word in words)


@dataclass(frozen=True)
class PolicyRow:
    value: PolicyValue
    used_by: tuple[str, ...]  # active rules that refer to it


@dataclass(frozen=True)
class Catalogue:
    version: str
    digest: str
    total: int
    files: int
    entries: tuple[RuleEntry, ...]
    policy_id: str = ""
    policy_version: str = ""
    policy: tuple[PolicyRow, ...] = ()
    pending: int = 0  # active rules whose file is not approved yet


def build_catalogue(rule_set: RuleSet, query: str = "") -> Catalogue:
    """The active rules, those matching every word of ``query`` (case-insensitive) when one is given."""
    words = query.lower().split()
    active = [f for f in rule_set.files if f.meta.status == "active"]
    wording = Wording(rule_set.vocabulary, rule_set.policy)
    gmap = _guideline_map(rule_set)
    entries = []
    for rule_file in active:
        source = _Source.read(rule_file, rule_set)
        entries += [_entry(rule, rule_file, source, wording, gmap) for rule in rule_file.rules]
    users: dict[str, list[str]] = {}
    for entry in entries:
        for used in entry.policies:
            users.setdefault(used.name, []).append(entry.id)
    policy = tuple(
        PolicyRow(value, tuple(users.get(name, ())))
        for name in rule_set.policy.parameters
        if (value := wording.policy_value(name)) is not None
    )
    return Catalogue(
        version=rule_set.version,
        digest=rule_set.digest,
        total=len(entries),
        files=len(active),
        entries=tuple(e for e in entries if e.matches(words)),
        policy_id=rule_set.policy.id,
        policy_version=rule_set.policy.version,
        policy=policy,
        pending=sum(1 for e in entries if e.approval.pending),
    )


def _guideline_map(rule_set: RuleSet) -> GuidelineMap | None:
    try:
        gmap, _ = read_guideline_map(map_path(rule_set))
    except Exception:  # a broken map file leaves the page up without the recommendations
        return None
    return gmap


def _entry(rule: Rule, rule_file: RuleFile, source: _Source, wording: Wording, gmap: GuidelineMap | None) -> RuleEntry:
    evidence = tuple(evidence_row(vars(e)) for e in rule.evidence)
    tests = tuple(RuleTestRow(t.name, t.hook, _expects(t.expect)) for t in rule.tests)
    text = source.rule_yaml(rule)
    when = wording.condition(rule.source.get("when"))
    then = wording.effects(rule)
    policies = tuple(
        value for name in sorted(policy_names(rule.source)) if (value := wording.policy_value(name)) is not None
    )
    implements = _implements(rule, gmap)
    changes = own_changes(rule, rule_file)
    meta = rule_file.meta
    haystack = " ".join(
        [rule.id, rule.title, meta.title, rule.ruleset_id, text, *when.clauses, *then, *changes]
        + [f"{e.citation} {e.note} {e.section}" for e in evidence]
        + [f"{r.id} {r.statement}" for r in implements]
        + [t.name for t in tests]
    ).lower()
    return RuleEntry(
        id=rule.id,
        title=rule.title,
        status=meta.status,
        version=rule.ruleset_version,
        ruleset=rule.ruleset_id,
        ruleset_title=meta.title,
        file=f"{Path(rule_file.path).name}:{rule.line}",
        hooks=", ".join(rule.hooks),
        when=when,
        then=then,
        policies=policies,
        evidence=evidence,
        tests=tests,
        implements=implements,
        changes=changes,
        approval=Approval(
            meta.approved_by, str(meta.approved_date), str(meta.effective_from), str(meta.review_by), meta.owner
        ),
        review_note=" ".join(rule.review_note.split()),
        yaml=text,
        haystack=haystack,
    )


def _implements(rule: Rule, gmap: GuidelineMap | None) -> tuple[RecommendationRow, ...]:
    if gmap is None:
        return ()
    rows = []
    for rec in gmap.citing(rule.id):
        source = gmap.sources.get(rec.source)
        rows.append(
            RecommendationRow(
                id=rec.id,
                source=source.title if source else rec.source,
                url=source.url if source and source.url.startswith(("https://", "http://")) else "",
                section=rec.section,
                level=rec.level,
                statement=" ".join(rec.statement.split()),
            )
        )
    return tuple(rows)


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


def own_changes(rule: Rule, rule_file: RuleFile) -> tuple[str, ...]:
    """The change-log entries of the rule's file that name the rule, oldest first (not the whole file's log)."""
    raw = rule_file.meta.raw.get("change_log")
    log = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []
    return tuple(_change_text(c) for c in log if re.search(rf"\b{re.escape(rule.id)}\b", str(c.get("change", ""))))


def _change_text(entry: Mapping[str, Any]) -> str:
    text = f"{entry.get('version', '')} ({entry.get('date', '')}): {' '.join(str(entry.get('change', '')).split())}"
    return text + (f" - why: {' '.join(str(entry['why']).split())}" if entry.get("why") else "")


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
