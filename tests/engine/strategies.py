"""Hypothesis strategies shared by the engine's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from cds.engine import conditions as c


def condition_trees(leaf: st.SearchStrategy[c.Node], *, max_leaves: int) -> st.SearchStrategy[c.Node]:
    """Conditions built from ``leaf`` with all / any / not, up to three children a node."""
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(c.All, st.lists(inner, min_size=1, max_size=3).map(tuple)),
            st.builds(c.AnyOf, st.lists(inner, min_size=1, max_size=3).map(tuple)),
            st.builds(c.Not, inner),
        ),
        max_leaves=max_leaves,
    )
