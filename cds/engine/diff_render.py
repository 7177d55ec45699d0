"""``rules diff`` output: markdown for the committee, JSON for tools."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from cds.engine.diff_data import number_text
from cds.engine.diff_model import (
    ListChange,
    ModelDiff,
    OldNew,
    PolicyDiff,
    RuleChange,
    RuleDiff,
    RuleFileDiff,
    RuleSetDiff,
    Sides,
    TerminologyDiff,
    Threshold,
    ValueSetChange,
)
from cds.engine.ruleset import POLICY_VERSION_PREFIX

NO_CHANGES = "No changes."
_OPS = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}


def render_json(diff: RuleSetDiff) -> str:
    return json.dumps(dataclasses.asdict(diff), indent=2, ensure_ascii=False, default=str) + "\n"


def render_markdown(diff: RuleSetDiff) -> str:
    sections = [
        ("Rules", _rules(diff.rules)),
        ("Rule files", _rule_files(diff.rule_files)),
        ("Policy", _policy(diff.policy)),
        ("Terminology", _terminology(diff.terminology)),
        ("PK models", _models(diff.models)),
        ("Other files", _other_files(diff)),
    ]
    lines = ["# Rule set diff", "", *_sides(diff.sides)]
    if diff.empty:
        lines += ["", "The two rule sets are the same."]
    for title, body in sections:
        while body and not body[0]:
            body = body[1:]  # a section that starts with its first changed rule
        lines += ["", f"## {title}", "", *(body or [NO_CHANGES])]
    return "\n".join(lines) + "\n"


def _sides(sides: Sides) -> list[str]:
    old, new = sides.old, sides.new
    return [
        f"- Old: `{old.root}`, digest `{old.digest[:12]}`",
        f"- New: `{new.root}`, digest `{new.digest[:12]}`",
        f"- Rule-set version: {_version_change(old.version, new.version)}",
    ]


def _version_change(old: str, new: str) -> str:
    """Only the rule files whose version differs ("trough 1.8.0 -> 1.9.0"); the full strings are in --json."""
    before, after = _versions(old), _versions(new)
    names = [*after, *(n for n in before if n not in after)]
    changed = [
        f"{n} {before.get(n, 'absent')} -> {after.get(n, 'absent')}" for n in names if before.get(n) != after.get(n)
    ]
    if not changed:
        return f"unchanged ({sum(not n.startswith(POLICY_VERSION_PREFIX) for n in after)} active rule files)"
    return f"{'; '.join(changed)} (other active rule files unchanged)"


def _versions(version: str) -> dict[str, str]:
    return dict(part.split("@", 1) for part in version.split("+") if "@" in part)


# --- rules ---------------------------------------------------------------------------------------------


def _rules(diff: RuleDiff) -> list[str]:
    lines = _added_removed(diff.added, diff.removed)
    lines += [f"- Moved: `{m.rule}` from {m.old} to {m.new} (a move alone is no change)" for m in diff.moved]
    for change in diff.changed:
        lines += ["", f"### {change.rule} ({_rule_version(change.version)})", ""]
        lines += [line for field in change.fields for line in _rule_field(change, field)]
    return lines


def _rule_version(version: OldNew) -> str:
    """The rule's file and version, "trough 1.8.0 -> 1.9.0"; a rule that moved to another file names both."""
    (old_file, old), (new_file, new) = (str(v).split("@", 1) for v in (version.old, version.new))
    if old_file != new_file:
        return f"{old_file} {old} -> {new_file} {new}"
    return f"{new_file} {old}, version not bumped" if old == new else f"{new_file} {old} -> {new}"


def _rule_field(change: RuleChange, field: str) -> list[str]:
    detail = change.changes[field]
    lines = [_threshold(t) for t in change.thresholds] if field == "when" else []
    if isinstance(detail, ListChange):
        return [*lines, f"- `{field}`: {_list_change(detail)}"]
    if isinstance(detail.old, str) and isinstance(detail.new, str) and detail.old.split() == detail.new.split():
        return [*lines, f"- `{field}`: line breaks or spacing only"]  # the text shown below collapses them
    if isinstance(detail.old, str) and isinstance(detail.new, str) and (len(detail.old) + len(detail.new)) > 80:
        return [*lines, f"- `{field}`:", f"  - old: {_text(detail.old)}", f"  - new: {_text(detail.new)}"]
    return [*lines, f"- `{field}`: {_inline(detail.old)} -> {_inline(detail.new)}"]


def _threshold(threshold: Threshold) -> str:
    op = _OPS.get(threshold.op, threshold.op)
    return f"- threshold `{threshold.fact}` {op} {_operand(threshold, 'old')} -> {_operand(threshold, 'new')}"


def _operand(threshold: Threshold, side: str) -> str:
    text, value = (threshold.old, threshold.old_value) if side == "old" else (threshold.new, threshold.new_value)
    if text.startswith("policy."):
        unit = f" {threshold.unit}" if threshold.unit else ""
        return f"`{text}` ({number_text(value)}{unit})"
    return text


def _list_change(change: ListChange) -> str:
    """Items by label; one label both removed and added is an edited item (a test with new values)."""
    removed, added = [_item(i) for i in change.removed], [_item(i) for i in change.added]
    edited = [label for label in added if label in removed]
    parts = [
        f"{what} {', '.join(labels)}"
        for what, labels in (
            ("removed", [r for r in removed if r not in edited]),
            ("added", [a for a in added if a not in edited]),
            ("changed", edited),
        )
        if labels
    ]
    return "; ".join(parts) or "order changed"


def _item(item: Any) -> str:
    """A test or evidence entry by its name or citation; anything else as written."""
    if isinstance(item, Mapping):
        label = item.get("name") or item.get("citation")
        if isinstance(label, str):
            return _text(label)
    return _inline(item)


def _text(text: str) -> str:
    return json.dumps(" ".join(text.split()), ensure_ascii=False)


def _plain(value: Any) -> str:
    """A value read with its unit ("1000 ng/mL", "7.29 L/h"), so without quotes."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value)
    return _inline(value)


def _inline(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return _text(value)
    flow = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False, allow_unicode=True)
    return f"`{flow.strip().removesuffix('...').strip()}`"


# --- rule files, policy ----------------------------------------------------------------------------


def _added_removed(
    added: Sequence[str], removed: Sequence[str], labels: tuple[str, str] = ("Added", "Removed")
) -> list[str]:
    """A section's first lines: what was added, then what was removed (none when neither)."""
    return [f"- {label}: {_codes(ids)}" for label, ids in zip(labels, (added, removed), strict=True) if ids]


def _rule_files(diff: RuleFileDiff) -> list[str]:
    lines = _added_removed(diff.added, diff.removed)
    for change in diff.changed:
        version = change.version
        bumped = f"{version.old} -> {version.new}" if version.old != version.new else f"{version.old}, not bumped"
        lines.append(f"- `{change.ruleset}` ({bumped}): {', '.join(change.fields)} changed")
        lines += [f"  - change log {_log_entry(entry)}" for entry in change.change_log_added]
    return lines


def _log_entry(entry: Mapping[str, Any]) -> str:
    why = f" (why: {' '.join(str(entry['why']).split())})" if entry.get("why") else ""
    return f"{entry.get('version', '?')}, {entry.get('date', '?')}: {' '.join(str(entry.get('change')).split())}{why}"


def _policy(diff: PolicyDiff) -> list[str]:
    old, new = diff.old, diff.new
    same = old == new
    head = (
        f"Policy `{new.id}` {new.version}" if same else f"Policy `{old.id}` {old.version} -> `{new.id}` {new.version}"
    )
    if not (diff.changed or diff.added or diff.removed):
        return [f"{head}: no changes."] if same else [f"{head}; no parameter changed."]
    lines = [f"{head}{', version not bumped' if same else ''}:", ""]
    for change in diff.changed:
        what = f"{_plain(change.old)} -> {_plain(change.new)}" if "value" in change.fields else "value unchanged"
        others = [f for f in change.fields if f != "value"]
        also = f"; {', '.join(others)} changed" if others else ""
        users = f" (used by {', '.join(change.rules)})" if change.rules else ""
        lines.append(f"- `{change.name}`: {what}{also}{users}")
    lines += [f"- Added `{p.name}`: {_plain(p.value)}" for p in diff.added]
    lines += [f"- Removed `{p.name}` (was {_plain(p.value)})" for p in diff.removed]
    return lines


# --- terminology, models, other files ---------------------------------------------------------------


def _terminology(diff: TerminologyDiff) -> list[str]:
    lines = _added_removed(diff.added, diff.removed, ("Value sets added", "Value sets removed"))
    for change in diff.changed:
        lines.append(f"- `{change.value_set}`:")
        lines += [f"  - {line}" for line in _value_set_lines(change)]
    return lines


def _value_set_lines(change: ValueSetChange) -> Iterable[str]:
    if change.added:
        yield "added " + ", ".join(_identifier(i) for i in change.added)
    if change.removed:
        yield "removed " + ", ".join(_identifier(i) for i in change.removed)
    for member in change.members_changed:
        yield f"member {_text(member.member)}: {member.field} {_inline(member.old)} -> {_inline(member.new)}"
    for setting in change.settings:
        yield f"{setting.name}: {_inline(setting.old)} -> {_inline(setting.new)}"


def _identifier(identifier: Mapping[str, str]) -> str:
    if "name" in identifier:
        return f"name {_text(identifier['name'])}"
    if "prefix" in identifier:
        return f"codes starting `{identifier['system']}|{identifier['prefix']}`"
    return f"code `{identifier['system']}|{identifier['code']}`"


def _models(diff: ModelDiff) -> list[str]:
    lines = _added_removed(diff.added, diff.removed)
    for change in diff.changed:
        lines.append(f"- `{change.model}`:")
        for p in change.parameters:
            unit = f" {p.unit}" if p.unit else ""
            lines.append(f"  - `{p.name}`: {_plain(p.old)} -> {_plain(p.new)}{unit}")
    return lines


def _other_files(diff: RuleSetDiff) -> list[str]:
    files = diff.other_files
    named = (("Added", files.added), ("Removed", files.removed), ("Changed", files.changed))
    lines = [f"- {what}: {', '.join(names)}" for what, names in named if names]
    return [*lines, "", "These files are compared as a whole; a text diff shows what changed."] if lines else []


def _codes(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
