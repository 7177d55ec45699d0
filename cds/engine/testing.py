"""Runs the tests written next to the rules and reports each as pass or fail with the reasons."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cds.engine.decision import Decision
from cds.engine.evaluate import RuleEngine
from cds.engine.model import Rule, RuleTest
from cds.numbers import format_number

# Turns a test's `request:` (a fhir_examples file) into (facts, hook); supplied by the pipeline.
RequestLoader = Callable[[str], tuple[Mapping[str, Any], str]]


class RequestUnavailable(Exception):
    """A test's request is not where the tests run (fhir_examples/ ship with the repository, not the wheel):
    the case is reported as skipped, neither passed nor failed."""


@dataclass(frozen=True)
class TestResult:
    rule_id: str
    test: str
    file: str
    line: int
    failures: tuple[str, ...]
    skipped: str = ""  # why the case could not run (its request is not here); a skipped case has no failures

    @property
    def passed(self) -> bool:
        return not self.failures


def run_rule_tests(engine: RuleEngine, request_loader: RequestLoader | None = None) -> list[TestResult]:
    results = []
    for rule in engine.rule_set.rules:
        for test in rule.tests:
            try:
                failures = tuple(_run(engine, rule, test, request_loader))
            except RequestUnavailable as exc:
                results.append(TestResult(rule.id, test.name, rule.file, test.line, (), skipped=str(exc)))
                continue
            results.append(TestResult(rule.id, test.name, rule.file, test.line, failures))
    return results


def _run(engine: RuleEngine, rule: Rule, test: RuleTest, loader: RequestLoader | None) -> Iterable[str]:
    if test.facts is not None:
        facts, hook = test.facts, test.hook
    elif loader is None:
        yield f"request test {test.request!r} needs the FHIR pipeline"
        return
    else:
        assert test.request is not None
        facts, hook = loader(test.request)
    decision = engine.evaluate(facts, hook)
    yield from check_expectation(decision, test)


def check_expectation(decision: Decision, test: RuleTest) -> Iterable[str]:
    fired = set(decision.fired_ids)
    expect = test.expect
    for rid in expect.fired:
        if rid not in fired:
            yield f"expected {rid} to fire; fired: {', '.join(sorted(fired)) or 'none'}"
    for rid in expect.not_fired:
        if rid in fired:
            yield f"expected {rid} not to fire"
    if expect.dose is not None:
        yield from _dose_mismatches(decision, expect.dose)
    for name, value in expect.derived.items():
        got = decision.facts.get(name)
        if got != value:
            yield f"expected {name} = {value!r}; got {got!r}"
    for name in expect.absent:
        if name == "dose" and decision.dose.action != "none":
            yield f"expected no dose effect; got {decision.dose.action} {decision.dose.daily_mg}"
        elif name == "card" and decision.cards:
            yield f"expected no card; got {', '.join(c.rule_id for c in decision.cards)}"
        elif name in decision.facts and name not in ("dose", "card"):
            yield f"expected {name} to be absent; got {decision.facts[name]!r}"


def _dose_mismatches(decision: Decision, expected: Mapping[str, object]) -> Iterable[str]:
    dose = decision.dose
    if "action" in expected and dose.action != expected["action"]:
        yield f"expected dose action {expected['action']}; got {dose.action}"
    if "daily_mg" in expected:
        want = float(expected["daily_mg"])  # type: ignore[arg-type]
        if dose.daily_mg is None or not math.isclose(dose.daily_mg, want):
            yield f"expected {format_number(want)} mg/day; got {dose.daily_mg}"
    if "interval_h" in expected and dose.interval_h != expected["interval_h"]:
        yield f"expected interval {expected['interval_h']} h; got {dose.interval_h}"
