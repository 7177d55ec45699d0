"""A patient record survives the audit log: to JSON, through canonical JSON text, and back, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds.audit.chain import canonical_json
from cds.errors import InvalidInput
from cds.fhir import parse_request
from cds.fhir.record_json import record_from_json, record_to_json
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_record_round_trips(pipeline: Pipeline, path: Path) -> None:
    record, _, _ = pipeline.facts_for(parse_request(path.read_bytes()), EXAMPLES_EVALUATION_TIME)
    assert record.facts, "an example without facts would prove nothing"
    assert record_from_json(json.loads(canonical_json(record_to_json(record)))) == record


def test_a_damaged_record_is_invalid_input_not_a_crash(pipeline: Pipeline) -> None:
    record, _, _ = pipeline.facts_for(parse_request(EXAMPLES[0].read_bytes()), EXAMPLES_EVALUATION_TIME)
    data = record_to_json(record)
    del data["covariates"]
    with pytest.raises(InvalidInput, match="record"):
        record_from_json(data)
