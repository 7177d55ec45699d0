"""durable_rules and the pure-Python reference evaluator must fire identical rules on any fact document.

The generated documents lean on the thresholds the rules use (exactly at, just across, far away) and on
missing facts, because that is where a compiler bug (a missing $ex guard, a wrong negation, a float the
engine misparses) would show.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.engine import conditions as c
from cds.engine.evaluate import RuleEngine
from cds.engine.ruleset import RuleSet, load_rules
from cds.engine.schema import HOOKS
from cds.engine.vocabulary import FactSpec
from tests.conftest import RULES, make_rules_root

FEATURES = Path(__file__).parent / "features.yaml"
EXAMPLES = 5000


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[RuleEngine, RuleEngine]:
    root = make_rules_root(tmp_path_factory.mktemp("rules"), *sorted((RULES / "imatinib").glob("*.yaml")), FEATURES)
    rule_set = load_rules(root)
    return RuleEngine(rule_set), RuleEngine(rule_set, backend="reference")


def _thresholds(rule_set: RuleSet) -> dict[str, set[float]]:
    found: dict[str, set[float]] = {}
    for rule in rule_set.rules:
        for leaf in c.leaves(rule.when):
            if isinstance(leaf, c.Compare) and isinstance(leaf.value, float):
                found.setdefault(leaf.fact, set()).add(leaf.value)
    return found


def _value(spec: FactSpec, near: set[float]) -> st.SearchStrategy[Any]:
    if spec.type == "boolean":
        return st.booleans()
    if spec.type == "code":
        return st.sampled_from(spec.values or ("rifampin", "St John's wort", "x"))
    low, high = spec.low or 0.0, spec.high or 0.0
    edges = sorted({v + d for v in near for d in (0.0, -1e-4, 1e-4, -0.5, 0.5, -1.0, 1.0)} | {low, high})
    edges = [e for e in edges if low <= e <= high]
    uniform = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return st.one_of(st.sampled_from(edges), uniform, st.floats(low, min(high, low + 1e-3))) if edges else uniform


def documents(rule_set: RuleSet) -> st.SearchStrategy[dict[str, Any]]:
    near = _thresholds(rule_set)
    used = {fact for rule in rule_set.rules for fact in c.facts_of(rule.when)}
    strategies = {name: _value(rule_set.vocabulary[name], near.get(name, set())) for name in sorted(used)}
    return st.fixed_dictionaries({}, optional=strategies)


def _fired(engine: RuleEngine, facts: Mapping[str, Any], hook: str) -> tuple[tuple[str, ...], Any]:
    decision = engine.evaluate(facts, hook)
    return decision.fired_ids, (decision.dose.action, decision.dose.daily_mg, dict(decision.derived))


def test_engines_agree_on_generated_documents(engines: tuple[RuleEngine, RuleEngine]) -> None:
    durable, reference = engines
    seen = {"docs": 0, "fired": 0}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(documents(durable.rule_set), st.sampled_from(HOOKS))
    def check(facts: dict[str, Any], hook: str) -> None:
        seen["docs"] += 1
        got = _fired(durable, facts, hook)
        want = _fired(reference, facts, hook)
        seen["fired"] += bool(want[0])
        assert got == want, f"{hook}: {facts}"

    check()
    assert seen["docs"] >= EXAMPLES
    assert seen["fired"] > EXAMPLES // 4  # the generator reaches the rules, not only empty documents


def test_engines_agree_on_every_rule_test(engines: tuple[RuleEngine, RuleEngine]) -> None:
    durable, reference = engines
    cases = [(t.facts, t.hook) for r in durable.rule_set.rules for t in r.tests if t.facts is not None]
    assert cases
    for facts, hook in cases:
        assert facts is not None
        assert _fired(durable, facts, hook) == _fired(reference, facts, hook)
