"""Facts -> the one document the engines evaluate: checked, quantised, value sets resolved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cds.engine.compile import MEMBERSHIP_KEY, Membership
from cds.engine.conditions import FactValue
from cds.engine.vocabulary import Vocabulary
from cds.errors import InvalidInput

DECIMALS = 4  # keeps every number in plain decimal notation (the engine's parser rejects 1e-05)


def normalise_facts(facts: Mapping[str, Any], vocabulary: Vocabulary) -> dict[str, FactValue]:
    """Validate names, types and plausible ranges; quantise numbers."""
    clean: dict[str, FactValue] = {}
    for name, value in facts.items():
        if value is None:
            continue  # absent, never null
        spec = vocabulary.facts.get(name)
        if spec is None:
            raise InvalidInput(f"facts.{name}", "unknown fact (not in facts.yaml)")
        if spec.type == "number" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not spec.accepts(value):
            raise InvalidInput(
                f"facts.{name}", f"{value!r} is not a plausible {spec.type} for {name} ({_expected(spec)})"
            )
        clean[name] = quantise(value)
    return clean


def _expected(spec: Any) -> str:
    if spec.type == "number":
        return f"range {spec.expected()}"
    return ", ".join(spec.values) if spec.values else spec.type


def quantise(value: FactValue) -> FactValue:
    if isinstance(value, float):
        rounded = round(value, DECIMALS)
        return 0.0 if rounded == 0 else rounded
    return value


class DocumentShape:
    """The facts and value sets one engine document may hold, with each name's nesting split once. A document
    nests dotted names and adds value-set membership under ``_in``; absent facts stay absent."""

    def __init__(self, names: Iterable[str], sets: Iterable[Membership]) -> None:
        self._paths = [(name, tuple(parts[:-1]), parts[-1]) for name in names for parts in [name.split(".")]]
        self._sets = tuple(sets)

    def build(self, facts: Mapping[str, FactValue]) -> dict[str, Any]:
        """The document of ``facts`` restricted to this shape (facts outside it are left out)."""
        doc: dict[str, Any] = {}
        for name, parents, leaf in self._paths:
            if name in facts:
                node = doc
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = facts[name]
        members = {
            m.key: found for m in self._sets if m.fact in facts for found in [m.resolve(facts)] if found is not None
        }
        if members:
            doc[MEMBERSHIP_KEY] = members
        return doc
