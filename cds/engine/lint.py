"""Checks that need more than one rule: ids, boundary tests, test references, derivation stages."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cds.engine import conditions as c
from cds.engine.boundary import missing_boundary_tests
from cds.engine.diagnostics import Diagnostic
from cds.engine.model import Rule, RuleFile
from cds.engine.vocabulary import Vocabulary

# Card text is for the clinician; reference files, section signs and rule ids are for reviewers (review_note,
# evidence notes) and the explanation page. The card builder adds key facts and citations to the detail, so the
# rule's own template stays short.
DETAIL_LINE_LIMIT = 8
_INTERNAL_REFERENCE = re.compile(
    r"(?P<file>[\w./-]+\.(?:md|py|ya?ml|json)\b)|(?P<section>§)|(?P<rule>\b[A-Z]+(?:-[A-Z0-9]+)*-\d{3}\b)"
)
_WHAT = {"file": "reference file", "section": "section sign", "rule": "rule id"}


def card_text_problems(card: Mapping[str, Any]) -> Iterable[tuple[tuple[str | int, ...], str, str]]:
    """(path inside the card, code, message) for card text meant for reviewers, and over-long details."""
    texts: list[tuple[tuple[str | int, ...], str]] = [(("summary",), str(card.get("summary", "")))]
    texts.append((("detail",), str(card.get("detail", ""))))
    texts += [(("suggestions", i, "label"), str(s.get("label", ""))) for i, s in enumerate(card.get("suggestions", ()))]
    for path, text in texts:
        for found in _INTERNAL_REFERENCE.finditer(text):
            kind = str(found.lastgroup)
            yield (
                path,
                "E021",
                f"card {path[0]} names a {_WHAT[kind]} ({found.group()!r}): move it to review_note or an evidence note",
            )
    lines = str(card.get("detail", "")).rstrip("\n").split("\n")
    if len(lines) > DETAIL_LINE_LIMIT:
        yield (
            ("detail",),
            "E022",
            f"card detail is {len(lines)} lines (max {DETAIL_LINE_LIMIT}); the builder adds key facts and citations",
        )


def check_cross_file(files: Sequence[RuleFile], vocabulary: Vocabulary) -> list[Diagnostic]:
    rules = [rule for f in files for rule in f.rules]
    found = list(_duplicate_ids(files))
    for rule in rules:
        found += _boundary_tests(rule, vocabulary)
        found += _test_references(rule, {r.id for r in rules}, vocabulary)
    found += _stage_problems(files)
    return found


def _diag(rule: Rule, code: str, message: str, line: int | None = None) -> Diagnostic:
    return Diagnostic(rule.file, line or rule.line, 5, code, message)


def _duplicate_ids(files: Sequence[RuleFile]) -> Iterable[Diagnostic]:
    """From the ids as written, so a rule with other errors still counts."""
    seen: dict[str, tuple[str, int]] = {}
    retired = {rid: f for f in files for rid in f.meta.retired_ids}
    for f in files:
        for rule_id, line in f.ids:
            if rule_id in seen:
                first_file, first_line = seen[rule_id]
                message = f"duplicate rule id {rule_id} (first defined at {first_file}:{first_line})"
                yield Diagnostic(f.path, line, 5, "E007", message)
            elif rule_id in retired:
                message = f"rule id {rule_id} was retired in {retired[rule_id].path} and may not be reused"
                yield Diagnostic(f.path, line, 5, "E007", message)
            seen.setdefault(rule_id, (f.path, line))


def _boundary_tests(rule: Rule, vocabulary: Vocabulary) -> Iterable[Diagnostic]:
    """Each threshold needs a test at the threshold and one just across it, so both sides are pinned."""
    for found in missing_boundary_tests(rule, vocabulary):
        yield Diagnostic(found.file, found.line, found.col, "E010", found.message())


def _test_references(rule: Rule, rule_ids: set[str], vocabulary: Vocabulary) -> Iterable[Diagnostic]:
    for test in rule.tests:
        for rid in (*test.expect.fired, *test.expect.not_fired):
            if rid not in rule_ids:
                yield _diag(rule, "E018", f"test {test.name!r} names unknown rule {rid}", test.line)
        for name in test.expect.absent:
            if name not in ("dose", "card") and name not in vocabulary:
                yield _diag(
                    rule,
                    "E018",
                    f"test {test.name!r}: absent entry {name!r} is neither dose, card nor a fact",
                    test.line,
                )


def stages(rules: Sequence[Rule]) -> dict[str, int]:
    """Evaluation stage per rule: a rule runs after every rule that derives a fact it reads."""
    order, _ = _stages(rules)
    return order


def _stages(rules: Sequence[Rule]) -> tuple[dict[str, int], list[Rule]]:
    derivers: Mapping[str, list[Rule]] = _derivers(rules)
    stage: dict[str, int] = {}
    cyclic: list[Rule] = []

    def visit(rule: Rule, path: tuple[str, ...]) -> int:
        if rule.id in stage:
            return stage[rule.id]
        if rule.id in path:
            cyclic.append(rule)
            return 0
        deps = [d for fact in c.facts_of(rule.when) for d in derivers.get(fact, ())]
        level = 1 + max((visit(d, (*path, rule.id)) for d in deps), default=-1)
        stage[rule.id] = level
        return level

    for rule in rules:
        visit(rule, ())
    return stage, cyclic


def _derivers(rules: Sequence[Rule]) -> dict[str, list[Rule]]:
    found: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        for derivation in rule.derive:
            found[derivation.fact].append(rule)
    return found


def _stage_problems(files: Sequence[RuleFile]) -> Iterable[Diagnostic]:
    rules = [rule for f in files for rule in f.rules]
    stage, cyclic = _stages(rules)
    reported: set[str] = set()
    for rule in cyclic:
        if rule.id not in reported:
            reported.add(rule.id)
            yield _diag(rule, "E014", f"{rule.id} takes part in a cycle of derived facts")
    for f in files:
        if f.meta.hit_policy == "first" and len({stage.get(r.id, 0) for r in f.rules}) > 1:
            yield Diagnostic(
                f.path,
                1,
                1,
                "E017",
                f"hit policy 'first' in {f.meta.id} spans rules that run in different stages",
            )
