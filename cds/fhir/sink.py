"""Collects facts, checking each against the vocabulary: wrong names are bugs, implausible values are dropped."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cds.engine.conditions import censor_companion
from cds.engine.vocabulary import Vocabulary
from cds.fhir.types import FactValue, Source, SourcedFact


class FactSink:
    def __init__(self, vocabulary: Vocabulary, warnings: list[str]) -> None:
        self.vocabulary = vocabulary
        self.warnings = warnings
        self.facts: dict[str, SourcedFact] = {}

    def put(
        self,
        name: str,
        value: FactValue,
        sources: Sequence[Source],
        note: str = "",
        *,
        side: str | None = None,
        reported: str = "",
        computed: str = "",
    ) -> bool:
        """Record a fact; returns False (with a warning) when the vocabulary rejects the value. ``side``: the
        value is a bound (censored) and the true value lies on that side; recorded as ``<name>_censored``.
        ``reported``: the value as the source wrote it, when it was converted to the vocabulary's unit.
        ``computed``: how a value computed from other results was made, for the clinician."""
        if side is not None and not self.vocabulary[name].censorable:
            raise AssertionError(f"{name} is not censorable: the mapper must not give it a bound")
        self.facts.pop(censor_companion(name), None)
        if not self._put(name, value, sources, note, reported, computed):
            return False
        return side is None or self._put(censor_companion(name), side, sources, note)

    def _put(
        self, name: str, value: FactValue, sources: Sequence[Source], note: str, reported: str = "", computed: str = ""
    ) -> bool:
        spec = self.vocabulary[name]
        if spec.derived:
            raise AssertionError(f"{name} is derived: the FHIR mapper must not set it")
        if isinstance(value, float):  # bool is an int, not a float
            if not math.isfinite(value):
                return self._drop(name, value, sources, "not a finite number")
            value = round(value, 6)
        if not spec.accepts(value):
            return self._drop(name, value, sources, f"outside the plausible {spec.expected()}")
        unique = tuple(sources) if len(sources) < 2 else tuple(dict.fromkeys(sources))
        self.facts[name] = SourcedFact(name, value, spec.unit, unique, note, reported, computed)
        return True

    def value(self, name: str) -> FactValue | None:
        fact = self.facts.get(name)
        return None if fact is None else fact.value

    def number(self, name: str) -> float | None:
        value = self.value(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def _drop(self, name: str, value: FactValue, sources: Sequence[Source], why: str) -> bool:
        where = ", ".join(str(s) for s in sources) or "no source"
        self.warnings.append(f"{name}: {value!r} dropped, {why} (from {where})")
        return False
