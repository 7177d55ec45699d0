"""The `when` language: a small condition tree, its three-valued meaning, and negation normal form.

Semantics (Kleene logic): a comparison on a missing fact is *unknown*; `not unknown` is unknown; a rule
fires only when its condition is *true*. So no comparison on a missing fact can ever make a rule fire,
and `missing`/`present` are the only way to act on absent data.

Censored values (a laboratory result reported only as a bound, "<0.10" or "> 3000"): a censorable fact
holds the bound, and its companion fact ``<name>_censored`` says which side the true value lies on
(below, at-or-below, above, at-or-above). A comparison then has interval semantics: it is true when every
value of the interval satisfies it, false when none does, and *unknown* when the interval straddles the
threshold, so an undecidable comparison never behaves as if the bound were exact. `censored` tests the
companion; on a missing fact it is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

FactValue = float | bool | str
Truth = bool | None  # None = unknown

NEGATED = {"eq": "ne", "ne": "eq", "lt": "gte", "gte": "lt", "lte": "gt", "gt": "lte"}
ORDERING = ("lt", "lte", "gt", "gte")
CENSOR_SUFFIX = "_censored"
CENSOR_SIDES = ("below", "at-or-below", "above", "at-or-above")
SIDE_GROUPS = {"below": frozenset({"below", "at-or-below"}), "above": frozenset({"above", "at-or-above"})}
ANY_SIDE = frozenset(CENSOR_SIDES)
# (op, side) -> how the bound must compare with the threshold for *every* value of the interval to satisfy
# op; a pair that is absent is never true (the interval is unbounded on that side, or eq on an interval).
CENSORED_TRUE_WHEN = {
    ("lt", "below"): "lte",
    ("lt", "at-or-below"): "lt",
    ("lte", "below"): "lte",
    ("lte", "at-or-below"): "lte",
    ("gt", "above"): "gte",
    ("gt", "at-or-above"): "gt",
    ("gte", "above"): "gte",
    ("gte", "at-or-above"): "gte",
    ("ne", "below"): "lte",
    ("ne", "at-or-below"): "lt",
    ("ne", "above"): "gte",
    ("ne", "at-or-above"): "gt",
}


@dataclass(frozen=True)
class Compare:
    op: str  # eq ne lt lte gt gte
    fact: str
    value: FactValue  # in the fact's canonical unit
    text: str  # as written, e.g. "40 mL/min" or "policy.cml_trough_target"
    censorable: bool = False  # the fact may be censored: interval semantics when its companion is present

    @property
    def companion(self) -> str:
        return censor_companion(self.fact)


@dataclass(frozen=True)
class Censored:
    """The fact is reported only as a bound on one of ``sides`` (negated: it is exact, or on another side)."""

    fact: str
    sides: frozenset[str]
    negated: bool = False

    @property
    def companion(self) -> str:
        return censor_companion(self.fact)


@dataclass(frozen=True)
class InSet:
    fact: str
    values: frozenset[str]
    negated: bool = False


@dataclass(frozen=True)
class Presence:
    fact: str
    present: bool


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | InSet | Presence | Censored | All | AnyOf | Not
Leaf = Compare | InSet | Presence | Censored


def censor_companion(fact: str) -> str:
    """The name of the fact that says on which side a censored ``fact`` lies."""
    return fact + CENSOR_SUFFIX


def truth(node: Node, facts: Mapping[str, FactValue]) -> Truth:
    """Three-valued truth of ``node`` over a flat fact mapping (the reference semantics)."""
    if isinstance(node, Presence):
        return (node.fact in facts) == node.present
    if isinstance(node, Compare | InSet | Censored):
        if node.fact not in facts:
            return None
        if isinstance(node, Censored):
            return (facts.get(node.companion) in node.sides) != node.negated
        if isinstance(node, Compare) and node.censorable and node.companion in facts:
            return censored_truth(node.op, float(facts[node.fact]), str(facts[node.companion]), float(node.value))
        return _leaf_truth(node, facts[node.fact])
    if isinstance(node, Not):
        inner = truth(node.item, facts)
        return None if inner is None else not inner
    results = [truth(item, facts) for item in node.items]
    if isinstance(node, All):
        return False if False in results else (None if None in results else True)
    return True if True in results else (None if None in results else False)


def _leaf_truth(node: Compare | InSet, value: FactValue) -> bool:
    if isinstance(node, InSet):
        return (str(value) in node.values) != node.negated
    if node.op == "eq":
        return value == node.value
    if node.op == "ne":
        return value != node.value
    left, right = float(value), float(node.value)
    return {"lt": left < right, "lte": left <= right, "gt": left > right, "gte": left >= right}[node.op]


def censored_truth(op: str, bound: float, side: str, threshold: float) -> Truth:
    """``x op threshold`` for every x on ``side`` of ``bound``: True, False (for none) or None (undecided)."""
    if op == "eq":
        inner = censored_truth("ne", bound, side, threshold)
        return None if inner is None else not inner
    if _bound_holds(CENSORED_TRUE_WHEN.get((op, side)), bound, threshold):
        return True
    if _bound_holds(CENSORED_TRUE_WHEN.get((NEGATED[op], side)), bound, threshold):
        return False
    return None


def _bound_holds(op: str | None, bound: float, threshold: float) -> bool:
    if op is None:
        return False
    return {"lt": bound < threshold, "lte": bound <= threshold, "gt": bound > threshold, "gte": bound >= threshold}[op]


def to_nnf(node: Node, negate: bool = False) -> Node:
    """Push every `not` down to the leaves (De Morgan holds in Kleene logic)."""
    if isinstance(node, Not):
        return to_nnf(node.item, not negate)
    if isinstance(node, All | AnyOf):
        items = tuple(to_nnf(item, negate) for item in node.items)
        if isinstance(node, All):
            return AnyOf(items) if negate else All(items)
        return All(items) if negate else AnyOf(items)
    if not negate:
        return node
    if isinstance(node, Presence):
        return Presence(node.fact, not node.present)
    if isinstance(node, InSet):
        return InSet(node.fact, node.values, not node.negated)
    if isinstance(node, Censored):
        return Censored(node.fact, node.sides, not node.negated)
    return Compare(NEGATED[node.op], node.fact, node.value, node.text, node.censorable)


def leaves(node: Node) -> Iterator[Leaf]:
    if isinstance(node, Not):
        yield from leaves(node.item)
    elif isinstance(node, All | AnyOf):
        for item in node.items:
            yield from leaves(item)
    else:
        yield node


def facts_of(node: Node) -> tuple[str, ...]:
    """The facts a condition reads, in first-use order (with the censoring companion of a censorable fact)."""
    return tuple(dict.fromkeys(name for leaf in leaves(node) for name in _reads(leaf)))


def _reads(leaf: Leaf) -> tuple[str, ...]:
    if isinstance(leaf, Censored) or isinstance(leaf, Compare) and leaf.censorable:
        return (leaf.fact, leaf.companion)
    return (leaf.fact,)


def required_facts(node: Node) -> frozenset[str]:
    """Facts that must all be present for ``node`` to be true: a comparison on a missing fact is unknown,
    so a document lacking any of them cannot make the condition true (only `missing` asks for absence)."""
    return _required(to_nnf(node))


def _required(node: Node) -> frozenset[str]:
    if isinstance(node, Presence):
        return frozenset({node.fact}) if node.present else frozenset()
    if isinstance(node, Compare | InSet):
        return frozenset({node.fact})
    if isinstance(node, Censored):
        return frozenset({node.fact, node.companion}) if not node.negated else frozenset({node.fact})
    assert isinstance(node, All | AnyOf)
    parts = [_required(item) for item in node.items]
    return frozenset().union(*parts) if isinstance(node, All) else frozenset.intersection(*parts)
