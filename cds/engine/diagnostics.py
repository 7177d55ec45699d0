"""Linter findings: one per problem, each with file, line, column and a stable code."""

from __future__ import annotations

from dataclasses import dataclass

# code -> what it means; every code has a test with an invalid file (tests/engine/invalid/)
CODES = {
    "E001": "YAML that cannot be parsed",
    "E002": "structure that does not match the rule-file schema",
    "E003": "unknown fact",
    "E004": "unit that cannot be converted to the fact's canonical unit",
    "E005": "threshold outside the fact's plausible range",
    "E006": "card summary longer than 139 characters when rendered with the largest plausible values",
    "E007": "duplicate rule id, or an id that was retired and is reused",
    "E008": "rule without evidence",
    "E009": "rule without a test",
    "E010": "threshold without a boundary test on each side",
    "E011": "unknown hook",
    "E012": "comparator that does not fit the fact's type",
    "E013": "unknown policy parameter",
    "E014": "a derived fact is set by a rule but is not declared derived, or rules derive in a cycle",
    "E015": "rule test that fails",
    "E016": "unknown placeholder in a card template",
    "E017": "hit policy 'first' over rules that run in different stages",
    "E018": "rule test that names an unknown rule or fact",
    "E019": "rule that no recommendation of rules/guideline-map.yaml cites",
    "E020": "guideline-map recommendation with neither rules nor a reason, or naming an unknown rule",
    "E021": "card text (summary, detail, suggestion label) naming a reference file, a section sign or a rule id",
    "E022": "card detail template longer than 8 lines",
}


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    col: int
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col} {self.code} {self.message}"
