"""Three-valued semantics and negation normal form of the `when` language."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cds.engine import conditions as c
from tests.engine.strategies import condition_trees

FACTS = ("a.x", "a.y", "b.code")

leaf = st.one_of(
    st.builds(
        c.Compare,
        st.sampled_from(["lt", "lte", "gt", "gte", "eq", "ne"]),
        st.sampled_from(FACTS[:2]),
        st.sampled_from([0.0, 1.0, 2.0]),
        st.just(""),
    ),
    st.builds(c.InSet, st.just("b.code"), st.sampled_from([frozenset({"p"}), frozenset({"p", "q"})]), st.booleans()),
    st.builds(c.Presence, st.sampled_from(FACTS), st.booleans()),
)
tree = condition_trees(leaf, max_leaves=8)
facts = st.fixed_dictionaries(
    {},
    optional={
        "a.x": st.sampled_from([0.0, 1.0, 2.0, 1.5]),
        "a.y": st.sampled_from([0.0, 2.0]),
        "b.code": st.sampled_from(["p", "q", "r"]),
    },
)


@given(tree, facts)
def test_nnf_keeps_three_valued_meaning(node: c.Node, values: dict[str, c.FactValue]) -> None:
    assert c.truth(c.to_nnf(node), values) == c.truth(node, values)


@given(tree, facts)
def test_nnf_has_no_not(node: c.Node, values: dict[str, c.FactValue]) -> None:
    assert "Not(" not in repr(c.to_nnf(node))


def test_comparison_on_a_missing_fact_is_unknown_and_stays_unknown_under_not() -> None:
    lt = c.Compare("lt", "a.x", 1.0, "1")
    assert c.truth(lt, {}) is None
    assert c.truth(c.Not(lt), {}) is None
    assert c.truth(c.AnyOf((lt, c.Presence("a.x", False))), {}) is True
    assert c.truth(c.All((lt, c.Presence("a.x", False))), {}) is None
    assert c.truth(c.All((lt, c.Presence("a.x", True))), {}) is False


def test_between_is_half_open() -> None:
    between = c.All((c.Compare("gte", "a.x", 1.0, "1"), c.Compare("lt", "a.x", 2.0, "2")))
    assert [c.truth(between, {"a.x": v}) for v in (0.99, 1.0, 1.99, 2.0)] == [False, True, True, False]


@given(tree, facts)
def test_a_true_condition_has_all_its_required_facts(node: c.Node, values: dict[str, c.FactValue]) -> None:
    """The engine skips a chunk when no rule's required facts are all present; that is exact only if so."""
    if c.truth(node, values) is True:
        assert c.required_facts(node) <= values.keys()


def test_required_facts_follow_negation_and_alternatives() -> None:
    lt, code = c.Compare("lt", "a.x", 1.0, "1"), c.InSet("b.code", frozenset({"p"}))
    assert c.required_facts(c.Not(c.AnyOf((lt, code)))) == {"a.x", "b.code"}  # = all of (not lt, not code)
    assert c.required_facts(c.AnyOf((lt, c.All((lt, code))))) == {"a.x"}
    assert c.required_facts(c.Not(c.Presence("a.y", True))) == frozenset()  # missing needs nothing present
