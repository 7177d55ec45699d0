"""The envelope check's fast path never lets through a request the schema would refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cds.cards.schema import request_schema
from cds.service.routes import plainly_valid
from tests.service.conftest import EXAMPLES

SCHEMA = Draft202012Validator(request_schema())

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.sampled_from(["", " ", "order-sign", "x"])
)
_RESOURCES = st.one_of(
    _SCALARS,
    st.fixed_dictionaries({}, optional={"resourceType": _SCALARS, "id": _SCALARS}),
    st.just({"resourceType": "Bundle", "entry": []}),
)
_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "hook": _SCALARS,
        "hookInstance": _SCALARS,
        "context": st.one_of(_SCALARS, st.just({}), st.just({"patientId": "p1"}), st.just([])),
        "fhirServer": st.one_of(_SCALARS, st.sampled_from(["https://ehr.example/r4", "http://x", "ftp://x", "https"])),
        "fhirAuthorization": st.one_of(_SCALARS, st.just({})),
        "prefetch": st.one_of(_SCALARS, st.dictionaries(st.sampled_from(["patient", "labs", "meds"]), _RESOURCES)),
    },
)


@settings(max_examples=2000, deadline=None)
@given(_BODIES)
def test_a_body_taken_by_the_fast_path_meets_the_schema(body: dict[str, Any]) -> None:
    if plainly_valid(body):
        assert [e.message for e in SCHEMA.iter_errors(body)] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_examples_take_the_fast_path(path: Path) -> None:
    assert plainly_valid(json.loads(path.read_text(encoding="utf-8")))


def test_a_refused_body_still_gets_the_schemas_words() -> None:
    from cds.errors import InvalidInput
    from cds.service.routes import _check_envelope

    with pytest.raises(InvalidInput) as refused:
        _check_envelope({"hook": "order-sign", "hookInstance": "h", "context": {}, "fhirServer": "ftp://x"})
    assert refused.value.path == "fhirServer" and "does not match" in refused.value.message
