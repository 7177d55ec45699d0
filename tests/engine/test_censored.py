"""Censored values in the rule language: interval semantics, `censored`, and both engines agreeing on them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds.engine import conditions as c
from cds.engine.evaluate import RuleEngine
from cds.engine.render import render
from cds.engine.ruleset import load_rules
from cds.engine.schema import HOOKS
from tests.conftest import make_rules_root
from tests.engine.strategies import condition_trees

SIDES = c.CENSOR_SIDES
OPS = ("lt", "lte", "gt", "gte", "eq", "ne")
EXACT = {
    "lt": lambda x, t: x < t,
    "lte": lambda x, t: x <= t,
    "gt": lambda x, t: x > t,
    "gte": lambda x, t: x >= t,
    "eq": lambda x, t: x == t,
    "ne": lambda x, t: x != t,
}


@pytest.mark.parametrize(
    ("op", "threshold", "want"),
    [
        ("lt", 0.5, True),  # "<0.10" is below every threshold at or above 0.10
        ("lt", 0.1, True),
        ("lte", 0.1, True),
        ("lt", 0.09, None),  # the interval straddles 0.09: undecided, never exact
        ("gte", 0.5, False),
        ("gte", 0.1, False),
        ("gt", 0.1, False),
        ("gte", 0.09, None),
        ("eq", 0.1, False),
        ("ne", 0.1, True),
        ("eq", 0.05, None),
    ],
)
def test_below_010(op: str, threshold: float, want: c.Truth) -> None:
    assert c.censored_truth(op, 0.1, "below", threshold) is want


@pytest.mark.parametrize(
    ("side", "op", "threshold", "want"),
    [
        ("at-or-below", "lt", 0.1, None),  # "<=0.10" may be 0.10
        ("at-or-below", "lte", 0.1, True),
        ("at-or-below", "gt", 0.1, False),
        ("at-or-below", "gte", 0.1, None),
        ("above", "gt", 3000.0, True),
        ("above", "gte", 3000.0, True),
        ("above", "lte", 3000.0, False),
        ("above", "gt", 3000.5, None),
        ("at-or-above", "gt", 3000.0, None),
        ("at-or-above", "gte", 3000.0, True),
        ("at-or-above", "lt", 3000.0, False),
        ("at-or-above", "lt", 3000.5, None),
    ],
)
def test_sides_at_the_bound(side: str, op: str, threshold: float, want: c.Truth) -> None:
    assert c.censored_truth(op, 3000.0 if "above" in side else 0.1, side, threshold) is want


def _inside(side: str, bound: float, offset: float) -> float:
    """A value on ``side`` of ``bound`` (offset >= 0; 0 only where the side includes the bound)."""
    if side in ("below", "at-or-below"):
        return bound - offset
    return bound + offset


@given(
    st.sampled_from(OPS),
    st.sampled_from(SIDES),
    st.sampled_from([0.0, 1.0, 2.0, 2.5]),
    st.sampled_from([0.0, 1.0, 2.0, 3.0]),
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 5.0]),
)
def test_a_decided_comparison_holds_for_every_value_of_the_interval(
    op: str, side: str, bound: float, threshold: float, offset: float
) -> None:
    if offset == 0 and side in ("below", "above"):
        return  # the strict sides exclude the bound itself
    truth = c.censored_truth(op, bound, side, threshold)
    if truth is not None:
        assert EXACT[op](_inside(side, bound, offset), threshold) is truth


@given(st.sampled_from(OPS), st.sampled_from(SIDES), st.sampled_from([0.0, 1.0, 2.0]), st.sampled_from([0.0, 1.0, 2.0]))
def test_undecided_means_values_of_the_interval_disagree(op: str, side: str, bound: float, threshold: float) -> None:
    if c.censored_truth(op, bound, side, threshold) is None:
        offsets = [d for d in (0.0, 0.5, 1.0, 1.5, 3.0, abs(threshold - bound)) if d or side.startswith("at-or")]
        samples = [_inside(side, bound, d) for d in offsets]
        assert len({EXACT[op](x, threshold) for x in samples}) == 2


leaf = st.one_of(
    st.builds(
        c.Compare, st.sampled_from(OPS), st.just("a.x"), st.sampled_from([0.0, 1.0, 2.0]), st.just(""), st.just(True)
    ),
    st.builds(
        c.Censored,
        st.just("a.x"),
        st.sampled_from([c.SIDE_GROUPS["below"], c.SIDE_GROUPS["above"], c.ANY_SIDE]),
        st.booleans(),
    ),
    st.builds(c.Presence, st.just("a.x"), st.booleans()),
)
tree = condition_trees(leaf, max_leaves=6)
documents = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"a.x": st.sampled_from([0.0, 1.0, 1.5, 2.0])}),
    st.fixed_dictionaries({"a.x": st.sampled_from([0.0, 1.0, 1.5, 2.0]), "a.x_censored": st.sampled_from(SIDES)}),
)


@given(tree, documents)
def test_nnf_keeps_the_meaning_of_censored_comparisons(node: c.Node, facts: dict[str, c.FactValue]) -> None:
    assert c.truth(c.to_nnf(node), facts) == c.truth(node, facts)


def test_censored_test_is_unknown_on_a_missing_fact_and_false_on_an_exact_one() -> None:
    below = c.Censored("a.x", c.SIDE_GROUPS["below"])
    assert c.truth(below, {}) is None
    assert c.truth(c.Not(below), {}) is None
    assert c.truth(below, {"a.x": 1.0}) is False
    assert c.truth(below, {"a.x": 1.0, "a.x_censored": "at-or-below"}) is True
    assert c.truth(below, {"a.x": 1.0, "a.x_censored": "above"}) is False


# --- both engines on a file that uses every censored construct ------------------------------------------

# every threshold of the fixture at and just across, so the linter's boundary check (E010) passes
TESTS = "\n".join(
    f"      - {{name: {fact} {value}, facts: {{{fact}: {value} 10*9/L}}, expect: {{absent: [dose]}}}}"
    for fact, values in (("heme.anc", (0.5, 0.49, 0.1, 0.09, 1, 0.99)), ("heme.platelets", (100, 100.5, 50, 49)))
    for value in values
)
RULES = """
ruleset:
  id: censored-features
  version: 1.0.0
  status: active
  title: Censored constructs
  purpose: Differential fixture
  owner: tests
  authors: [{name: tests, role: fixture}]
  clinical_reviewers: []
  approved: {by: tests, date: 2026-12-06}
  effective_from: 2026-12-06
  review_by: 2027-12-06
  jurisdiction: US
  hit_policy: collect
  change_log: [{version: 1.0.0, date: 2026-12-06, change: fixture}]
rules:
""" + "".join(
    f"""
  - id: IMA-CENS-{i:03d}
    title: fixture {i}
    hooks: [order-sign, order-select, patient-view]
    evidence: [{{citation: fixture, level: label}}]
    when: {when}
    then:
      card: {{indicator: info, topic: level, summary: "ANC {{heme.anc}}"}}
    tests:
{TESTS}
""".replace("{TESTS}", TESTS)
    for i, when in enumerate(
        [
            "{censored: heme.anc}",
            "{censored: [heme.anc, below]}",
            "{not: {censored: [heme.anc, above]}}",
            "{lt: [heme.anc, 0.5 10*9/L]}",
            "{not: {gte: [heme.anc, 0.1 10*9/L]}}",
            "{eq: [heme.anc, 0.1 10*9/L]}",
            "{ne: [heme.anc, 0.1 10*9/L]}",
            "{between: [heme.anc, 0.1 10*9/L, 1 10*9/L]}",
            "{any: [{lt: [heme.anc, 1 10*9/L]}, {gt: [heme.platelets, 100 10*9/L]}]}",
            "{all: [{censored: [heme.platelets, above]}, {gte: [heme.platelets, 50 10*9/L]}]}",
        ]
    )
)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[RuleEngine, RuleEngine]:
    root = make_rules_root(tmp_path_factory.mktemp("censored"), ("censored.yaml", RULES))
    rule_set = load_rules(root)
    return RuleEngine(rule_set), RuleEngine(rule_set, backend="reference")


count = st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0, 1.1, 50.0, 100.0, 120.0])
fact_documents = st.fixed_dictionaries(
    {},
    optional={
        "heme.anc": count,
        "heme.anc_censored": st.sampled_from(SIDES),
        "heme.platelets": count,
        "heme.platelets_censored": st.sampled_from(SIDES),
    },
).map(lambda d: {k: v for k, v in d.items() if not k.endswith("_censored") or k.removesuffix("_censored") in d})


@given(fact_documents, st.sampled_from(HOOKS))
def test_durable_and_reference_agree_on_censored_facts(
    engines: tuple[RuleEngine, RuleEngine], facts: dict[str, Any], hook: str
) -> None:
    durable, reference = engines
    assert durable.evaluate(facts, hook).fired_ids == reference.evaluate(facts, hook).fired_ids


def test_the_fixture_decides_by_intervals(engines: tuple[RuleEngine, RuleEngine]) -> None:
    durable, _ = engines
    fired = durable.evaluate({"heme.anc": 0.1, "heme.anc_censored": "below"}, "order-sign").fired_ids
    want = {
        "IMA-CENS-000",
        "IMA-CENS-001",
        "IMA-CENS-002",
        "IMA-CENS-003",
        "IMA-CENS-004",
        "IMA-CENS-006",
        "IMA-CENS-008",
    }
    assert set(fired) == want
    undecided = durable.evaluate({"heme.anc": 0.6, "heme.anc_censored": "below"}, "order-sign").fired_ids
    assert "IMA-CENS-003" not in undecided and "IMA-CENS-007" not in undecided  # < 0.6 vs 0.5 and [0.1, 1)


def test_a_censored_fact_renders_with_its_sign(engines: tuple[RuleEngine, RuleEngine]) -> None:
    policy = engines[0].rule_set.policy
    assert render("ANC {heme.anc}", {"heme.anc": 0.1, "heme.anc_censored": "below"}, policy) == "ANC <0.1"
    assert render("{level.conc}", {"level.conc": 50.0, "level.conc_censored": "at-or-above"}, policy) == ">=50"
    assert render("{level.conc}", {"level.conc": 50.0}, policy) == "50"


def test_a_censored_fact_is_never_copied_into_a_derived_one(durable_engine: RuleEngine) -> None:
    facts = {"tdm.sample_is_trough": True, "level.conc": 50.0, "level.conc_censored": "below"}
    decision = durable_engine.evaluate(facts, "patient-view")
    assert "tdm.trough" not in decision.facts
    assert any("not done, it is censored (below)" in w for w in decision.warnings)
    exact = durable_engine.evaluate({"tdm.sample_is_trough": True, "level.conc": 950.0}, "patient-view")
    assert exact.facts["tdm.trough"] == 950.0
