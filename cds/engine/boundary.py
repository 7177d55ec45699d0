"""Boundary tests: each threshold needs a test at it and one just across it, so `lt` vs `lte` is pinned (E010).

``missing_boundary_tests`` says which tests are missing, with values and units, and which existing tests come
nearest, so a pharmacist who moves a threshold (or a policy value) knows exactly which tests to add or move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cds.engine import conditions as c
from cds.engine.model import Rule
from cds.engine.vocabulary import Vocabulary
from cds.numbers import format_number

BOUNDARY_RELATIVE = 0.05  # a test value within 5% (or 1 unit) of a threshold counts as "at the boundary"
NEAREST_SHOWN = 2


@dataclass(frozen=True)
class MissingBoundary:
    rule_id: str
    file: str
    line: int
    col: int
    threshold: str  # "lt 60 mL/min on renal.crcl" (a policy value with its current value)
    missing: tuple[str, ...]  # "a test at 60 mL/min", "a test just below 60 mL/min (57 mL/min or more)"
    nearest: tuple[str, ...]  # '"CrCl 45 is mild" (45 mL/min)'

    def message(self) -> str:
        return f"{self.rule_id}: threshold {self.threshold} needs {' and '.join(self.missing)}; {self.nearest_tests()}"

    def nearest_tests(self) -> str:
        return f"nearest tests: {', '.join(self.nearest)}" if self.nearest else "no test sets this fact"


def missing_boundary_tests(rule: Rule, vocabulary: Vocabulary) -> Iterable[MissingBoundary]:
    for leaf in c.leaves(rule.when):
        if not isinstance(leaf, c.Compare) or leaf.op not in c.ORDERING or isinstance(leaf.value, bool | str):
            continue
        spec = vocabulary.facts.get(leaf.fact)
        unit = "" if spec is None or spec.unit in (None, "1") else f" {spec.unit}"
        tests = [(t.name, float(v)) for t in rule.tests if t.facts for k, v in t.facts.items() if k == leaf.fact]
        found = _missing(leaf, [v for _, v in tests], unit)
        if found:
            line, col = rule.threshold_at.get(leaf, (rule.line, 5))
            written = leaf.text if leaf.text.endswith(unit.strip()) or not unit else f"{leaf.text}{unit}"
            if leaf.text.startswith("policy."):
                written = f"{leaf.text} ({format_number(float(leaf.value))}{unit})"
            nearest = sorted(tests, key=lambda t: abs(t[1] - float(leaf.value)))[:NEAREST_SHOWN]
            shown = tuple(f'"{name}" ({format_number(v)}{unit})' for name, v in nearest)
            yield MissingBoundary(
                rule.id, rule.file, line, col, f"{leaf.op} {written} on {leaf.fact}", tuple(found), shown
            )


def _missing(leaf: c.Compare, values: list[float], unit: str) -> list[str]:
    threshold = float(leaf.value)
    width = max(abs(threshold) * BOUNDARY_RELATIVE, 1.0)
    other_side = -1 if leaf.op in ("lt", "gte") else 1
    missing = []
    if not any(v == threshold for v in values):
        missing.append(f"a test at {format_number(threshold)}{unit}")
    if not any(0 < (v - threshold) * other_side <= width for v in values):
        side, limit = ("below", "or more") if other_side < 0 else ("above", "or less")
        edge = f"{threshold + other_side * width:.3f}".rstrip("0").rstrip(".")  # exact: 712.5, not 712
        missing.append(f"a test just {side} {format_number(threshold)}{unit} ({edge}{unit} {limit})")
    return missing
