"""Policy parameters, terminology value sets, PK models and the remaining rule files compared, for ``rules diff``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cds.engine.conditions import Compare, leaves
from cds.engine.diff_model import (
    Change,
    FileDiff,
    MemberChange,
    ModelChange,
    ModelDiff,
    PolicyChange,
    PolicyDiff,
    PolicyId,
    PolicyValue,
    TerminologyDiff,
    ValueSetChange,
)
from cds.engine.model import Rule
from cds.engine.policy import POLICY_PREFIX, Policy, PolicyParameter
from cds.fhir.terminology import Member, Terminology, ValueSet
from cds.units import Quantity, UnitError, convert

_POLICY_NAME = re.compile(re.escape(POLICY_PREFIX) + r"(\w+)")
_MEMBER_FIELDS = ("status", "source", "strength_mg", "grade")

# --- policy ------------------------------------------------------------------------------------------


def diff_policy(old: Policy, new: Policy, rules: Iterable[Rule]) -> PolicyDiff:
    """``rules`` are the new side's: a changed parameter names the rules that use it."""
    before, after = old.parameters, new.parameters
    users = _policy_users(rules)
    changes = (_parameter_change(before[n], after[n], users.get(n, ())) for n in after if n in before)
    return PolicyDiff(
        old=PolicyId(old.id, old.version),
        new=PolicyId(new.id, new.version),
        changed=tuple(change for change in changes if change is not None),
        added=tuple(PolicyValue(n, _shown(p.value), _unit(p.value)) for n, p in after.items() if n not in before),
        removed=tuple(PolicyValue(n, _shown(p.value), _unit(p.value)) for n, p in before.items() if n not in after),
    )


def _parameter_change(old: PolicyParameter, new: PolicyParameter, users: tuple[str, ...]) -> PolicyChange | None:
    fields = [] if same_value(old.value, new.value) else ["value"]
    fields += [name for name in ("evidence", "level", "note") if getattr(old, name) != getattr(new, name)]
    if not fields:
        return None
    return PolicyChange(new.name, _shown(old.value), _shown(new.value), _unit(new.value), tuple(fields), users)


def same_value(old: Any, new: Any) -> bool:
    """Equal, or the same quantity in another unit (1 mg/L is 1000 ng/mL)."""
    if isinstance(old, Quantity) and isinstance(new, Quantity):
        try:
            return math.isclose(convert(old.value, old.unit, new.unit), new.value, rel_tol=1e-12)
        except UnitError:
            return False
    if isinstance(old, bool) != isinstance(new, bool):
        return False  # True == 1 in Python, not in a policy
    return bool(old == new)


def _shown(value: Any) -> Any:
    """A quantity as the policy file writes it ("1000 ng/mL"); anything else as it is."""
    return f"{number_text(value.value)} {value.unit}" if isinstance(value, Quantity) else value


def _unit(value: Any) -> str | None:
    return value.unit if isinstance(value, Quantity) else None


def number_text(value: float) -> str:
    """Exactly, without a trailing .0 (a diff must never round 7.29 -> 7.3 into "no visible change")."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _policy_users(rules: Iterable[Rule]) -> dict[str, tuple[str, ...]]:
    """Parameter name -> the rules whose condition or effect (card text included) names it."""
    users: dict[str, list[str]] = {}
    for rule in rules:
        named = {leaf.text for leaf in leaves(rule.when) if isinstance(leaf, Compare)}
        named |= {POLICY_PREFIX + m for m in _POLICY_NAME.findall(repr(rule.source.get("then")))}
        for name in sorted(n[len(POLICY_PREFIX) :] for n in named if n.startswith(POLICY_PREFIX)):
            users.setdefault(name, []).append(rule.id)
    return {name: tuple(ids) for name, ids in users.items()}


# --- terminology ----------------------------------------------------------------------------------------


def diff_terminology(old: Terminology, new: Terminology) -> TerminologyDiff:
    before, after = old.value_sets, new.value_sets
    changes = (_value_set_change(before[n], after[n]) for n in after if n in before)
    return TerminologyDiff(
        added=tuple(n for n in after if n not in before),
        removed=tuple(n for n in before if n not in after),
        changed=tuple(change for change in changes if change is not None),
    )


def _value_set_change(old: ValueSet, new: ValueSet) -> ValueSetChange | None:
    before, after = _identifiers(old), _identifiers(new)
    settings = tuple(
        Change(name, was, now)
        for name, was, now in (
            ("description", old.description, new.description),
            ("match_names", _match_names(old), _match_names(new)),
        )
        if was != now
    )
    members = tuple(_member_changes(old, new))
    if before == after and not settings and not members:
        return None
    return ValueSetChange(
        new.name,
        added=tuple(_identifier_json(i) for i in sorted(after - before)),
        removed=tuple(_identifier_json(i) for i in sorted(before - after)),
        members_changed=members,
        settings=settings,
    )


def _identifiers(value_set: ValueSet) -> set[tuple[str, str, str]]:
    """What a concept is matched by: codes and code prefixes with their system, and member names."""
    found: set[tuple[str, str, str]] = set()
    for member in value_set.members:
        found |= {("code", system, code) for system, code in member.codes}
        found |= {("prefix", system, prefix) for system, prefix in member.prefixes}
        found |= {("name", "", word) for word in member.words}  # lower case: matching ignores case
    return found


def _identifier_json(identifier: tuple[str, str, str]) -> dict[str, str]:
    kind, system, value = identifier
    return {"name": value} if kind == "name" else {"system": system, kind: value}


def _match_names(value_set: ValueSet) -> bool | str:
    return "uncoded" if value_set.names_uncoded_only else value_set.names is not None


def _member_changes(old: ValueSet, new: ValueSet) -> Iterable[MemberChange]:
    before = _by_name(old.members)
    for name, member in _by_name(new.members).items():
        was = before.get(name)
        if was is None:
            continue
        for field in _MEMBER_FIELDS:
            if getattr(was, field) != getattr(member, field):
                yield MemberChange(member.name, field, getattr(was, field), getattr(member, field))


def _by_name(members: Iterable[Member]) -> dict[str, Member]:
    return {member.name.lower(): member for member in members}


# --- PK models -------------------------------------------------------------------------------------------


def diff_models(old: Mapping[str, Any], new: Mapping[str, Any]) -> ModelDiff:
    """Models by name (file stem), each compared as its parsed file, value by value."""
    changes = (_model_change(name, old[name], new[name]) for name in new if name in old)
    return ModelDiff(
        added=tuple(n for n in new if n not in old),
        removed=tuple(n for n in old if n not in new),
        changed=tuple(change for change in changes if change is not None),
    )


def _model_change(name: str, old: Any, new: Any) -> ModelChange | None:
    before, after = dict(_flatten(old)), dict(_flatten(new))
    changes = []
    for path in [*after, *(p for p in before if p not in after)]:
        was, unit_was = before.get(path, (None, None))
        now, unit_now = after.get(path, (None, None))
        if was != now:
            changes.append(Change(path, was, now, unit_now or unit_was))
    return ModelChange(name, tuple(changes)) if changes else None


def _flatten(data: Any, path: str = "", unit: str | None = None) -> Iterable[tuple[str, tuple[Any, str | None]]]:
    """(dotted path, (value, unit)) per value; covariate effects are keyed by covariate, other lists are values.

    A value's unit is the ``unit`` beside it (``parameters.CL.typical`` is in ``parameters.CL.unit``).
    """
    if isinstance(data, dict):
        beside = data.get("unit") if isinstance(data.get("unit"), str) else None
        for key, value in data.items():
            yield from _flatten(value, f"{path}.{key}" if path else str(key), beside if key != "unit" else None)
    elif _keyed_by_covariate(data):
        for effect in data:
            yield from _flatten(effect, f"{path}[{effect['covariate']}]")
    else:
        yield path, (data, unit)


def _keyed_by_covariate(data: Any) -> bool:
    if not isinstance(data, list) or not data or not all(isinstance(e, dict) and "covariate" in e for e in data):
        return False
    return len({str(e["covariate"]) for e in data}) == len(data)


# --- other files ------------------------------------------------------------------------------------------


def diff_files(old: Mapping[str, Any], new: Mapping[str, Any]) -> FileDiff:
    return FileDiff(
        added=tuple(n for n in new if n not in old),
        removed=tuple(n for n in old if n not in new),
        changed=tuple(n for n in new if n in old and old[n] != new[n]),
    )
