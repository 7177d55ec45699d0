"""Compile rule conditions to durable_rules JSON, in the safe pattern the engine needs.

* one flattened document per evaluation, tagged ``t: ctx`` so no pattern ever matches session state;
* every leaf guarded by ``$ex`` so a comparison on a missing fact can never fire (also inside ``$or``);
* ``not`` pushed to the leaves (negation normal form); value sets resolved in Python into booleans
  under ``_in``; no arithmetic in the engine; a catch-all rule so every document is handled;
* at most CHUNK_SIZE rules per durable ruleset, far below its 64-matching-siblings and 512-sibling limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    """A value set resolved in Python: document key ``_in.<key>`` is true when the fact's code is in it."""

    key: str
    fact: str
    values: frozenset[str]


def memberships(rules: Sequence[Rule]) -> dict[tuple[str, frozenset[str]], Membership]:
    found: dict[tuple[str, frozenset[str]], Membership] = {}
    for rule in rules:
        for leaf in c.leaves(rule.when):
            if isinstance(leaf, c.InSet) and (leaf.fact, leaf.values) not in found:
                found[(leaf.fact, leaf.values)] = Membership(f"m{len(found)}", leaf.fact, leaf.values)
    return found


def chunk_rules(rules: Sequence[Rule]) -> list[Sequence[Rule]]:
    """The rules of each durable ruleset compile_chunks makes, in the same order."""
    return [rules[start : start + CHUNK_SIZE] for start in range(0, len(rules), CHUNK_SIZE)]


def compile_chunks(
    rules: Sequence[Rule], sets: Mapping[tuple[str, frozenset[str]], Membership]
) -> list[dict[str, Any]]:
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


def compile_condition(node: c.Node, sets: Mapping[tuple[str, frozenset[str]], Membership]) -> dict[str, Any]:
    return _compile(c.to_nnf(node), sets)


def _compile(node: c.Node, sets: Mapping[tuple[str, frozenset[str]], Membership]) -> dict[str, Any]:
    if isinstance(node, c.All | c.AnyOf):
        parts = [_compile(item, sets) for item in node.items]
        if len(parts) == 1:
            return parts[0]
        return {"$and" if isinstance(node, c.All) else "$or": parts}
    if isinstance(node, c.Presence):
        return {"$ex" if node.present else "$nex": {node.fact: 1}}
    if isinstance(node, c.InSet):
        key = f"{MEMBERSHIP_KEY}.{sets[(node.fact, node.values)].key}"
        return {"$and": [{"$ex": {key: 1}}, {key: not node.negated}]}
    assert isinstance(node, c.Compare)
    return {"$and": [{"$ex": {node.fact: 1}}, _comparison(node)]}


def _comparison(node: c.Compare) -> dict[str, Any]:
    if node.op == "eq":
        return {node.fact: node.value}
    return {"$" + {"ne": "neq"}.get(node.op, node.op): {node.fact: node.value}}
