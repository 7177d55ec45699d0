"""Mutated requests (dropped fields, wrong types, absurd values) raise nothing but InvalidInput."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.errors import InvalidInput
from cds.fhir import default_vocabulary
from tests.fhir.helpers import EXAMPLES, clone, example, record_of

NAMES = sorted(p.name for p in EXAMPLES.glob("*.json"))
BODIES = {name: example(name) for name in NAMES}
Path = tuple[Any, ...]

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "<html><body>502</body></html>", "2026-13-45", "1e400", "Patient/other", "{pill}", "mg"]),
    st.text(max_size=20),
    st.just([]),
    st.just({}),
    st.just([{"resourceType": "Observation"}]),
    st.just({"resourceType": "Basic", "id": "x"}),
)


def _paths(node: Any, path: Path = ()) -> list[Path]:
    out = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


PATHS = {name: _paths(body) for name, body in BODIES.items()}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(NAMES))
    body = clone(BODIES[name])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(PATHS[name]))
        parent = _parent(body, path)
        if parent is None:
            continue
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(draw(ODD_VALUES))  # st.just shares one object
    return body


def _parent(body: Any, path: Path) -> Any:
    node = body
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)):
        return node
    return None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_raise_only_invalid_input(body: dict[str, Any]) -> None:
    try:
        record = record_of(body)
    except InvalidInput as exc:
        assert exc.path and exc.message
        return
    vocabulary = default_vocabulary()
    for fact in record.facts.values():
        assert vocabulary[fact.name].accepts(fact.value), fact


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES), st.integers(min_value=0, max_value=5000))
def test_truncated_bytes_raise_only_invalid_input(name: str, cut: int) -> None:
    raw = json.dumps(BODIES[name]).encode()
    try:
        record_of(raw[: min(cut, len(raw) - 1)])
    except InvalidInput:
        return
    raise AssertionError("a truncated request was accepted")
