"""The `when` language: a small condition tree, its three-valued meaning, and negation normal form.

Semantics (Kleene logic): a comparison on a missing fact is *unknown*; `not unknown` is unknown; a rule
fires only when its condition is *true*. So no comparison on a missing fact can ever make a rule fire,
and `missing`/`present` are the only way to act on absent data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

FactValue = float | bool | str
Truth = bool | None  # None = unknown

NEGATED = {"eq": "ne", "ne": "eq", "lt": "gte", "gte": "lt", "lte": "gt", "gt": "lte"}
ORDERING = ("lt", "lte", "gt", "gte")


@dataclass(frozen=True)
class Compare:
    op: str  # eq ne lt lte gt gte
    fact: str
    value: FactValue  # in the fact's canonical unit
    text: str  # as written, e.g. "40 mL/min" or "policy.cml_trough_target"


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


Node = Compare | InSet | Presence | All | AnyOf | Not
Leaf = Compare | InSet | Presence


def truth(node: Node, facts: Mapping[str, FactValue]) -> Truth:
    """Three-valued truth of ``node`` over a flat fact mapping (the reference semantics)."""
    if isinstance(node, Presence):
        return (node.fact in facts) == node.present
    if isinstance(node, Compare | InSet):
        if node.fact not in facts:
            return None
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
    return Compare(NEGATED[node.op], node.fact, node.value, node.text)


def leaves(node: Node) -> Iterator[Leaf]:
    if isinstance(node, Not):
        yield from leaves(node.item)
    elif isinstance(node, All | AnyOf):
        for item in node.items:
            yield from leaves(item)
    else:
        yield node


def facts_of(node: Node) -> tuple[str, ...]:
    """The facts a condition reads, in first-use order."""
    return tuple(dict.fromkeys(leaf.fact for leaf in leaves(node)))


def required_facts(node: Node) -> frozenset[str]:
    """Facts that must all be present for ``node`` to be true: a comparison on a missing fact is unknown,
    so a document lacking any of them cannot make the condition true (only `missing` asks for absence)."""
    return _required(to_nnf(node))


def _required(node: Node) -> frozenset[str]:
    if isinstance(node, Presence):
        return frozenset({node.fact}) if node.present else frozenset()
    if isinstance(node, Compare | InSet):
        return frozenset({node.fact})
    assert isinstance(node, All | AnyOf)
    parts = [_required(item) for item in node.items]
    return frozenset().union(*parts) if isinstance(node, All) else frozenset.intersection(*parts)
