"""What ``rules diff`` found between two rule directories, as immutable objects.

Field names are the keys of the ``--json`` output (``dataclasses.asdict`` gives it), so renaming a field
changes the published format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Side:
    """One rule directory: what load_rules reports about it."""

    root: str
    version: str  # e.g. "renal@1.0.0+hepatic@1.2.0" (active rule files)
    digest: str  # sha256 over the parsed rule, policy and fact files


@dataclass(frozen=True)
class Sides:
    old: Side
    new: Side


@dataclass(frozen=True)
class OldNew:
    old: Any
    new: Any


@dataclass(frozen=True)
class ListChange:
    """A list field: the items it lost and gained (both empty: only the order changed)."""

    removed: tuple[Any, ...]
    added: tuple[Any, ...]


@dataclass(frozen=True)
class Change:
    """A named value that differs; ``unit`` when the value is a quantity."""

    name: str
    old: Any
    new: Any
    unit: str | None = None


# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A number in a rule's `when` that differs, as written and in the fact's canonical unit."""

    fact: str
    op: str
    old: str  # "600 mg" or "policy.label_max_daily_mg"
    new: str
    old_value: float
    new_value: float
    unit: str | None


@dataclass(frozen=True)
class RuleChange:
    rule: str
    fields: tuple[str, ...]  # YAML keys: when, title, evidence, tests, then.card.summary, then.dose.factor, ...
    version: OldNew  # of the rule's file: "trough@1.8.0" -> "trough@1.9.0" (equal: not bumped)
    changes: Mapping[str, OldNew | ListChange]  # field -> the values as written (after YAML parsing)
    thresholds: tuple[Threshold, ...] = ()


@dataclass(frozen=True)
class Move:
    rule: str
    old: str  # file name
    new: str


@dataclass(frozen=True)
class RuleDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[RuleChange, ...] = ()
    moved: tuple[Move, ...] = ()


@dataclass(frozen=True)
class RuleFileChange:
    ruleset: str
    fields: tuple[str, ...]  # keys under `ruleset:` (version, change_log, approved, ...), or "rule order"
    version: OldNew
    change_log_added: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class RuleFileDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[RuleFileChange, ...] = ()


# --- policy, terminology, models, other files ------------------------------------------------------


@dataclass(frozen=True)
class PolicyId:
    id: str
    version: str


@dataclass(frozen=True)
class PolicyChange:
    name: str
    old: Any  # "1000 ng/mL" for a quantity, else the value as written
    new: Any
    unit: str | None
    fields: tuple[str, ...]  # value, evidence, level, note
    rules: tuple[str, ...]  # the rules that refer to the parameter (policy.<name>)


@dataclass(frozen=True)
class PolicyValue:
    name: str
    value: Any
    unit: str | None


@dataclass(frozen=True)
class PolicyDiff:
    old: PolicyId
    new: PolicyId
    changed: tuple[PolicyChange, ...] = ()
    added: tuple[PolicyValue, ...] = ()
    removed: tuple[PolicyValue, ...] = ()


@dataclass(frozen=True)
class MemberChange:
    member: str
    field: str  # status, source, strength_mg, grade
    old: Any
    new: Any


@dataclass(frozen=True)
class ValueSetChange:
    value_set: str
    added: tuple[Mapping[str, str], ...]  # {"system", "code"}, {"system", "prefix"} or {"name"}
    removed: tuple[Mapping[str, str], ...]
    members_changed: tuple[MemberChange, ...] = ()
    settings: tuple[Change, ...] = ()  # description, match_names


@dataclass(frozen=True)
class TerminologyDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[ValueSetChange, ...] = ()


@dataclass(frozen=True)
class ModelChange:
    model: str
    parameters: tuple[Change, ...]  # dotted paths into the model file: parameters.CL.typical


@dataclass(frozen=True)
class ModelDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[ModelChange, ...] = ()


@dataclass(frozen=True)
class FileDiff:
    """Files compared only as a whole (parsed): facts.yaml, mapping.yaml, guideline-map.yaml."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSetDiff:
    sides: Sides
    rules: RuleDiff
    rule_files: RuleFileDiff
    policy: PolicyDiff
    terminology: TerminologyDiff
    models: ModelDiff
    other_files: FileDiff

    @property
    def empty(self) -> bool:
        parts = (self.rules, self.rule_files, self.terminology, self.models, self.other_files)
        lists = [getattr(p, name) for p in parts for name in ("added", "removed", "changed")]
        policy = self.policy
        return not any((*lists, self.rules.moved, policy.changed, policy.added, policy.removed)) and (
            policy.old == policy.new
        )
