"""Compile rule conditions to durable_rules JSON, in the safe pattern the engine needs.

* one flattened document per evaluation, tagged ``t: ctx`` so no pattern ever matches session state;
* every leaf guarded by ``$ex`` so a comparison on a missing fact can never fire (also inside ``$or``);
* ``not`` pushed to the leaves (negation normal form); value sets resolved in Python into booleans
  under ``_in``; no arithmetic in the engine; a catch-all rule so every document is handled;
* at most CHUNK_SIZE rules per durable ruleset, far below its 64-matching-siblings and 512-sibling limits;
* a comparison on a censorable fact is resolved in Python like a value set (interval semantics,
  conditions.truth) into a boolean under ``_in``, present only when the comparison is decided: one key per
  leaf, no ``$or`` expansion (durable multiplies ``$or`` branches into alternatives: error 113).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from cds.engine import conditions as c
from cds.engine.model import Rule

CHUNK_SIZE = 40
MARKER = {"t": "ctx"}
MEMBERSHIP_KEY = "_in"
CATCH_ALL = "zz_catch_all"
NOOP = "noop"
HIT_PREFIX = "hit:"


@dataclass(frozen=True)
class Membership:
    """A test resolved in Python: document key ``_in.<key>`` is true when the fact's code is in ``values``,
    or, for a comparison on a censorable fact, holds its three-valued truth (absent when undecided)."""

    key: str
    fact: str
    values: frozenset[str]
    test: c.Compare | c.Censored | None = None

    def resolve(self, facts: Mapping[str, c.FactValue]) -> bool | None:
        if self.test is not None:
            return c.truth(self.test, facts)
        return str(facts[self.fact]) in self.values if self.fact in facts else None


MembershipKey = tuple[str, frozenset[str] | c.Compare | c.Censored]
Resolved = c.InSet | c.Compare | c.Censored


def membership_key(leaf: Resolved) -> MembershipKey:
    """InSet: its fact and values (negation is the compiled ``false``); a comparison on a censorable fact:
    the leaf, its text left out; a censored test: the leaf."""
    if isinstance(leaf, c.InSet):
        return (leaf.fact, leaf.values)
    if isinstance(leaf, c.Compare):
        return (leaf.fact, c.Compare(leaf.op, leaf.fact, leaf.value, "", True))
    return (leaf.fact, leaf)


def resolved_in_python(leaf: c.Leaf) -> TypeGuard[Resolved]:
    return isinstance(leaf, c.InSet | c.Censored) or isinstance(leaf, c.Compare) and leaf.censorable


def memberships(rules: Sequence[Rule]) -> dict[MembershipKey, Membership]:
    found: dict[MembershipKey, Membership] = {}
    for rule in rules:
        for leaf in c.leaves(c.to_nnf(rule.when)):
            if not resolved_in_python(leaf):
                continue
            key = membership_key(leaf)
            if key not in found:
                name, what = f"m{len(found)}", key[1]
                if isinstance(what, frozenset):
                    found[key] = Membership(name, leaf.fact, what)
                else:
                    found[key] = Membership(name, leaf.fact, frozenset(), what)
    return found


def chunk_rules(rules: Sequence[Rule]) -> list[Sequence[Rule]]:
    """The rules of each durable ruleset compile_chunks makes, in the same order."""
    return [rules[start : start + CHUNK_SIZE] for start in range(0, len(rules), CHUNK_SIZE)]


def compile_chunks(rules: Sequence[Rule], sets: Mapping[MembershipKey, Membership]) -> list[dict[str, Any]]:
    """Durable ruleset bodies (rule name -> definition), CHUNK_SIZE rules each, priority = file order."""
    chunks = []
    for n, members in enumerate(chunk_rules(rules)):
        body: dict[str, Any] = {
            rule.id: {
                "pri": n * CHUNK_SIZE + i,
                "all": [{"m": {"$and": [MARKER, compile_condition(rule.when, sets)]}}],
                "run": HIT_PREFIX + rule.id,
            }
            for i, rule in enumerate(members)
        }
        body[CATCH_ALL] = {"pri": 1_000_000, "all": [{"m": MARKER}], "run": NOOP}
        chunks.append(body)
    return chunks


def compile_condition(node: c.Node, sets: Mapping[MembershipKey, Membership]) -> dict[str, Any]:
    return _compile(c.to_nnf(node), sets)


def _compile(node: c.Node, sets: Mapping[MembershipKey, Membership]) -> dict[str, Any]:
    if isinstance(node, c.All | c.AnyOf):
        parts = [_compile(item, sets) for item in node.items]
        if len(parts) == 1:
            return parts[0]
        return {"$and" if isinstance(node, c.All) else "$or": parts}
    if isinstance(node, c.Presence):
        return {"$ex" if node.present else "$nex": {node.fact: 1}}
    if isinstance(node, c.InSet):
        key = f"{MEMBERSHIP_KEY}.{sets[membership_key(node)].key}"
        return {"$and": [{"$ex": {key: 1}}, {key: not node.negated}]}
    if isinstance(node, c.Censored) or isinstance(node, c.Compare) and node.censorable:
        key = f"{MEMBERSHIP_KEY}.{sets[membership_key(node)].key}"
        return {"$and": [{"$ex": {key: 1}}, {key: True}]}
    assert isinstance(node, c.Compare)
    return {"$and": [{"$ex": {node.fact: 1}}, _comparison(node.op, node.fact, node.value)]}


def _comparison(op: str, fact: str, value: c.FactValue) -> dict[str, Any]:
    if op == "eq":
        return {fact: value}
    return {"$" + {"ne": "neq"}.get(op, op): {fact: value}}
