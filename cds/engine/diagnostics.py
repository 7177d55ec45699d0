"""Linter findings: one per problem, each with file, line, column, a stable code and how to fix it."""

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
    "E023": "guideline-map statement quoting a value of a policy parameter it names that the policy no longer has",
}

# code -> one line saying what to do about it; docs/rule-language.md shows an example of each fix
FIXES = {
    "E001": "correct the YAML at that line (indent with spaces, quote text that contains ': ' or starts with a symbol)",
    "E002": "compare the field with docs/rule-language.md or `imatinib-cds rules schema`",
    "E003": "use a fact named in rules/facts.yaml, or declare the new fact there",
    "E004": "write the threshold with a unit that converts to the fact's unit (units of rules/facts.yaml)",
    "E005": "check the value and its unit against the fact's plausible range in rules/facts.yaml",
    "E006": "shorten the summary; move the explanation to `detail`",
    "E007": "give the rule a new id that was never used (see `retired_ids`)",
    "E008": "add an `evidence:` entry with citation and level",
    "E009": "add a `tests:` entry that makes the rule fire",
    "E010": "add the tests named, with the fact at the threshold and just across it",
    "E011": "use one of the hooks order-select, order-sign, patient-view",
    "E012": "compare the fact as its type in rules/facts.yaml allows (numbers: lt/gte/between; codes: eq/in)",
    "E013": "use a parameter of rules/policy.yaml, or add it there with its value and evidence",
    "E014": "declare the fact `derived: true` in rules/facts.yaml, or break the cycle between the rules",
    "E015": "correct the rule or the test's expectation, then run `imatinib-cds rules test` again",
    "E016": "use {fact.name} or {policy.name} names from rules/facts.yaml and rules/policy.yaml",
    "E017": "move the rules of another stage to a file with `hit_policy: collect`",
    "E018": "name a rule id or a fact that exists (`imatinib-cds rules show --all` lists the rules)",
    "E019": "add the rule id to `rules:` of the recommendation it implements in rules/guideline-map.yaml "
    "(or add a recommendation for it)",
    "E020": "give the recommendation `rules: [...]` or `not_implemented: <reason>`, and name rules that exist",
    "E021": "move references to files, sections and rules to `review_note` or an evidence `note`",
    "E022": "shorten the detail to 8 lines; the card builder adds key facts and citations itself",
    "E023": "quote the policy's current value in the statement of rules/guideline-map.yaml (a warning)",
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

    @property
    def fix(self) -> str:
        """How to fix it, in one line (the same for every finding of a code)."""
        return FIXES.get(self.code, "")
