"""Rules and rule files of two rule sets compared by meaning, for ``rules diff``.

A rule is matched by id, wherever it lives. Its `when` is compared as a condition (units converted, order
inside all/any ignored, a policy reference kept by name); every other field as written after YAML parsing,
so anchors, comments and layout never show as changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cds.engine import conditions as c
from cds.engine.diff_model import (
    ListChange,
    Move,
    OldNew,
    RuleChange,
    RuleDiff,
    RuleFileChange,
    RuleFileDiff,
    Threshold,
)
from cds.engine.model import Rule, RuleFile
from cds.engine.policy import POLICY_PREFIX
from cds.engine.ruleset import RuleSet

_EFFECTS_BY_KEY = ("card", "dose")  # `then` parts reported key by key (then.card.summary, then.dose.factor)


def diff_rules(old: RuleSet, new: RuleSet) -> RuleDiff:
    before = {rule.id: rule for rule in every_rule(old)}
    after = {rule.id: rule for rule in every_rule(new)}
    common = [rule_id for rule_id in after if rule_id in before]
    changed = (_rule_change(before[i], after[i], new) for i in common)
    return RuleDiff(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        changed=tuple(change for change in changed if change is not None),
        moved=tuple(
            Move(i, _file_name(before[i]), _file_name(after[i]))
            for i in common
            if _file_name(before[i]) != _file_name(after[i])
        ),
    )


def every_rule(rule_set: RuleSet) -> list[Rule]:
    """Every rule, of draft and retired files too: a committee reviews drafts before they go live."""
    return [rule for f in rule_set.files for rule in f.rules]


def _file_name(rule: Rule) -> str:
    return Path(rule.file).name


def _rule_change(old: Rule, new: Rule, new_set: RuleSet) -> RuleChange | None:
    fields = changed_fields(old, new)
    if not fields:
        return None
    return RuleChange(
        rule=new.id,
        fields=fields,
        version=OldNew(f"{old.ruleset_id}@{old.ruleset_version}", f"{new.ruleset_id}@{new.ruleset_version}"),
        changes={name: _detail(_at(old.source, name), _at(new.source, name)) for name in fields},
        thresholds=tuple(changed_thresholds(old.when, new.when, new_set)) if "when" in fields else (),
    )


def changed_fields(old: Rule, new: Rule) -> tuple[str, ...]:
    fields: list[str] = []
    for key in _keys(old.source, new.source):
        if key == "when":
            if canonical(old.when) != canonical(new.when):
                fields.append(key)
        elif key == "then":
            fields += _then_fields(_mapping(old.source.get(key)), _mapping(new.source.get(key)))
        elif old.source.get(key) != new.source.get(key):
            fields.append(key)
    return tuple(fields)


def _then_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    fields = []
    for effect in _keys(old, new):
        before, after = old.get(effect), new.get(effect)
        if effect in _EFFECTS_BY_KEY and isinstance(before, dict) and isinstance(after, dict):
            fields += [f"then.{effect}.{key}" for key in _keys(before, after) if before.get(key) != after.get(key)]
        elif before != after:
            fields.append(f"then.{effect}")
    return fields


def _keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys in the new order, then those only the old one has."""
    return [*new, *(key for key in old if key not in new)]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _detail(old: Any, new: Any) -> OldNew | ListChange:
    """Lists (tests, evidence, hooks) by the items that differ: a whole list of tests hides the one edited."""
    if isinstance(old, list) and isinstance(new, list):
        return ListChange(removed=_minus(old, new), added=_minus(new, old))
    return OldNew(old, new)


def _minus(items: list[Any], others: list[Any]) -> tuple[Any, ...]:
    left = list(others)
    kept = []
    for item in items:
        if item in left:
            left.remove(item)
        else:
            kept.append(item)
    return tuple(kept)


def _at(source: Mapping[str, Any], field: str) -> Any:
    value: Any = source
    for key in field.split("."):  # field names come from _then_fields: no dotted key below `then`
        value = value.get(key) if isinstance(value, dict) else None
    return value


# --- conditions --------------------------------------------------------------------------------------


def canonical(node: c.Node) -> Hashable:
    """A condition's meaning as a value: all/any are sets (nested ones of the same kind merged)."""
    if isinstance(node, c.All | c.AnyOf):
        kind = "all" if isinstance(node, c.All) else "any"
        parts: set[Hashable] = set()
        for item in node.items:
            form = canonical(item)
            if isinstance(form, tuple) and form[0] == kind:
                parts |= form[1]
            else:
                parts.add(form)
        return next(iter(parts)) if len(parts) == 1 else (kind, frozenset(parts))
    if isinstance(node, c.Not):
        return ("not", canonical(node.item))
    if isinstance(node, c.Compare):
        return ("compare", node.op, node.fact, _operand(node))
    return node  # InSet, Presence and Censored are frozen values already


def _operand(leaf: c.Compare) -> Hashable:
    """A policy reference by name (its value is the policy's business); a number rounded past float noise."""
    if leaf.text.startswith(POLICY_PREFIX):
        return leaf.text
    if isinstance(leaf.value, float):
        return float(f"{leaf.value:.12g}")
    return leaf.value


def changed_thresholds(old: c.Node, new: c.Node, new_set: RuleSet) -> Iterable[Threshold]:
    """Numbers that differ between comparisons on the same fact with the same operator.

    Comparisons are paired in the order written; a fact compared a different number of times on the two
    sides is a change of the condition's shape, which the field `when` reports as a whole.
    """
    before, after = _numeric_leaves(old), _numeric_leaves(new)
    for key, leaves in after.items():
        if len(before.get(key, ())) != len(leaves):
            continue
        for was, now in zip(before[key], leaves, strict=True):
            if _operand(was) != _operand(now):
                unit = new_set.vocabulary[now.fact].unit if now.fact in new_set.vocabulary else None
                yield Threshold(now.fact, now.op, was.text, now.text, float(was.value), float(now.value), unit)


def _numeric_leaves(node: c.Node) -> dict[tuple[str, str], list[c.Compare]]:
    found: dict[tuple[str, str], list[c.Compare]] = defaultdict(list)
    for leaf in c.leaves(node):
        if isinstance(leaf, c.Compare) and isinstance(leaf.value, float):
            found[(leaf.fact, leaf.op)].append(leaf)
    return found


# --- rule files ----------------------------------------------------------------------------------------


def diff_rule_files(old: RuleSet, new: RuleSet) -> RuleFileDiff:
    before = {f.meta.id: f for f in old.files}
    after = {f.meta.id: f for f in new.files}
    changed = (_file_change(before[i], after[i]) for i in after if i in before)
    return RuleFileDiff(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        changed=tuple(change for change in changed if change is not None),
    )


def _file_change(old: RuleFile, new: RuleFile) -> RuleFileChange | None:
    fields = [key for key in _keys(old.meta.raw, new.meta.raw) if old.meta.raw.get(key) != new.meta.raw.get(key)]
    if _order(old, new) != _order(new, old):
        fields.append("rule order")  # the priority of a `first` file; the order cards are listed in
    if not fields:
        return None
    old_log, new_log = _change_log(old), _change_log(new)
    return RuleFileChange(
        ruleset=new.meta.id,
        fields=tuple(fields),
        version=OldNew(old.meta.version, new.meta.version),
        change_log_added=tuple(entry for entry in new_log if entry not in old_log),
    )


def _order(file: RuleFile, other: RuleFile) -> list[str]:
    """The ids ``file`` shares with ``other``, in ``file``'s order."""
    shared = {rule_id for rule_id, _ in other.ids}
    return [rule_id for rule_id, _ in file.ids if rule_id in shared]


def _change_log(file: RuleFile) -> list[Mapping[str, Any]]:
    log = file.meta.raw.get("change_log")
    return [entry for entry in log if isinstance(entry, dict)] if isinstance(log, list) else []
