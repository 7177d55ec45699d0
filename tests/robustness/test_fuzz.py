"""Fuzzing the service: schemathesis from the OpenAPI document, and hypothesis mutations of fhir_examples.

Whatever arrives, the service answers: never a 5xx, every 4xx an OperationOutcome, every 200 a response that
validates against the CDS Hooks schema. The bounded run here (a few hundred requests, fixed seed) is part of
`make test`; IMATINIB_CDS_FUZZ_EXAMPLES=5000 runs that many examples per generator, with fresh randomness (the
long run recorded in docs/performance.md).
"""

from __future__ import annotations

import copy
import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.service.app import create_app
from cds.service.config import ServiceConfig
from tests.conftest import examples_clock
from tests.robustness.conftest import SERVICES, answer_problem, examples, service_path

LONG = int(os.environ.get("IMATINIB_CDS_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=LONG or 150,
    deadline=None,
    derandomize=not LONG,  # CI: the same few hundred requests every run; the long run explores
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
EXAMPLES = examples()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    config = ServiceConfig(database_url=f"sqlite:///{tmp}/audit.sqlite3", link_secret_file=tmp / "secret")
    application = create_app(config, clock=examples_clock)
    yield application
    application.state.service.audit.dispose()


class Tally:
    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.problems: list[str] = []

    def record(self, label: str, status: int, content: bytes) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        problem = answer_problem(status, content)
        if problem:
            self.problems.append(f"{label}: {problem}")

    def report(self, name: str) -> str:
        total = sum(self.by_status.values())
        return f"{name}: {total} requests, by status {dict(sorted(self.by_status.items()))}"


# --- schemathesis -----------------------------------------------------------------------------------------


def test_schemathesis_against_the_openapi_document(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = st.one_of(
        schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    tally = Tally()

    @SETTINGS
    @given(case=cases, data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        if "service_id" in (case.path_parameters or {}) and data.draw(st.booleans()):
            # half of the calls reach a real service, so that generated bodies get past the routing
            case.path_parameters["service_id"] = data.draw(st.sampled_from(sorted(SERVICES.values())))
            if isinstance(case.body, dict) and data.draw(st.booleans()):
                case.body["hook"] = case.path_parameters["service_id"].removeprefix("imatinib-")
        response = case.call()
        tally.record(
            f"{case.method} {case.formatted_path} {str(case.body)[:300]}", response.status_code, response.content
        )
        assert not tally.problems, tally.problems[-1]

    run()
    print(tally.report("schemathesis"))
    assert sum(tally.by_status.values()) >= SETTINGS.max_examples


# --- mutations of the examples -----------------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "2026-13-45",
            "2026-11-25T10:00",
            "2026-11-25T10:00:00+25:00",
            "9999-12-31T23:59:59Z",
            "0001-01-01",
            "400 mg",
            "-1",
            "1e309",
            "urn:uuid:" + "0" * 36,
            "Patient/",
            "Patient/other",
            "\u0000",
            "x" * 10_000,
        ]
    ),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def parent_of(body: Any, path: tuple[Any, ...]) -> Any:
    node = body
    for step in path[:-1]:
        node = node[step]
    return node


# Hostile JSON (issue 15): Python's json recurses per nesting level, refuses integers over 4,300 digits, and
# accepts lone surrogate escapes that cannot be encoded again; each must be a 400, never a 500.
_PLACEHOLDER = "__hostile-json__"
HOSTILE = {
    "deep nesting": st.sampled_from([65, 1_000, 100_000]).map(lambda n: b"[" * n + b"]" * n),
    "deep objects": st.sampled_from([65, 5_000]).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    "long integer": st.sampled_from([101, 4_301, 5_001]).map(lambda n: b"9" * n),
    "long decimal": st.sampled_from([101, 5_001]).map(lambda n: b"0." + b"1" * n),
    "lone surrogate": st.sampled_from([b'"\\ud800"', b'"x\\udc00"', b'"\\udbff\\u0041"']),
}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """An example request with one to four mutations: deleted, replaced, wrapped, unwrapped or duplicated."""
    original = draw(st.sampled_from(EXAMPLES))
    body = copy.deepcopy(original)
    body["hookInstance"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    for _ in range(draw(st.integers(1, 4))):
        candidates = [p for p in paths(body) if p]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent, last = parent_of(body, path), path[-1]
        action = draw(st.sampled_from(["delete", "replace", "wrap", "unwrap", "duplicate", "number", "string"]))
        value = parent[last]
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(JSON_VALUE)
        elif action == "wrap":
            parent[last] = [value]
        elif action == "unwrap" and isinstance(value, list | dict):
            items = list(value.values()) if isinstance(value, dict) else value
            parent[last] = items[0] if items else None
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(value))
        elif action == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            parent[last] = draw(st.sampled_from([0, -value, value * 1000, 1e308, math.inf, math.nan, str(value)]))
        elif action == "string" and isinstance(value, str):
            parent[last] = draw(st.sampled_from(["", value[: len(value) // 2], value.upper(), value + "Z", " "]))
    hostile = draw(st.sampled_from([None] * 6 + list(HOSTILE)))
    if hostile is not None:  # placed at a random spot, spliced in as raw JSON below
        candidates = [p for p in paths(body) if p]
        where = draw(st.sampled_from(candidates)) if candidates else ("context",)
        parent_of(body, where)[where[-1]] = _PLACEHOLDER
    hook = body.get("hook") if isinstance(body, dict) else None
    path = service_path(hook) if isinstance(hook, str) and hook in SERVICES else service_path(original["hook"])
    raw = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity too: Python's json accepts them
    if hostile is not None:
        raw = raw.replace(json.dumps(_PLACEHOLDER).encode(), draw(HOSTILE[hostile]), 1)
    shape = draw(st.sampled_from(["as is"] * 8 + ["truncated", "latin-1", "feedback"]))
    if shape == "truncated":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif shape == "latin-1":
        raw = raw.replace(b'"', b'"\xe9', 1)
    elif shape == "feedback":
        path += "/feedback"
    return path, raw


def test_mutated_examples(app: FastAPI) -> None:
    tally = Tally()
    with TestClient(app, raise_server_exceptions=False) as client:

        @SETTINGS
        @given(request=mutated())
        def run(request: tuple[str, bytes]) -> None:
            path, raw = request
            response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
            tally.record(f"POST {path} {raw[:2000]!r}", response.status_code, response.content)
            assert not tally.problems, tally.problems[-1]

        run()
    print(tally.report("mutations"))
    assert sum(tally.by_status.values()) >= SETTINGS.max_examples
    assert app.state.service.audit.verify().ok


# --- findings, kept as regression tests ---------------------------------------------------------------------


def test_finding_zoned_and_plain_times_of_day_in_one_order(app: FastAPI) -> None:
    """Found by fuzzing: the number 0 beside "20:00:00" in timing.repeat.timeOfDay is read by the R4B model as
    midnight UTC (an aware time); the dose schedule could not sort aware and naive times and the call was a 500.
    FHIR `time` has no zone: the zone is dropped."""
    body = next(b for b in EXAMPLES if '"timeOfDay": ["08:00:00", "20:00:00"]' in json.dumps(b["context"]))
    raw = json.dumps(body).replace('"timeOfDay": ["08:00:00", ', '"timeOfDay": [0, ', 1)
    assert raw != json.dumps(body)
    with TestClient(app) as client:
        response = client.post(service_path(body["hook"]), content=raw.encode())
    assert response.status_code == 200, response.text
