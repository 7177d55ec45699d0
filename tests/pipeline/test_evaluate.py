"""The whole pipeline on every fhir_examples request, and `imatinib-cds evaluate` as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest
from jsonschema import Draft202012Validator

from cds.cards.schema import request_schema, response_schema
from cds.cli.main import main
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import ROOT, card_of_rule, dose_suggestion

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
NOW = "2026-11-25T12:00:00Z"
RESPONSE = Draft202012Validator(response_schema())


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    pipeline = Pipeline()
    return {p.name: pipeline.run(p.read_bytes(), now=EXAMPLES_EVALUATION_TIME) for p in EXAMPLES}


def walk(value: Any) -> list[Any]:
    found = [value]
    if isinstance(value, dict):
        for item in value.values():
            found += walk(item)
    elif isinstance(value, list):
        for item in value:
            found += walk(item)
    return found


def test_there_are_enough_examples() -> None:
    assert len(EXAMPLES) >= 15


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_request_is_valid_and_its_response_validates(path: Path, outcomes: dict[str, Outcome]) -> None:
    assert list(Draft202012Validator(request_schema()).iter_errors(json.loads(path.read_text()))) == []
    response = outcomes[path.name].response
    assert [e.message for e in RESPONSE.iter_errors(response)] == []
    empties = [v for card in response["cards"] for v in walk(card) if v is None or v == "" or v == [] or v == {}]
    assert empties == []


def test_uuids_are_unique_across_cards_and_suggestions(outcomes: dict[str, Outcome]) -> None:
    ids = [c["uuid"] for o in outcomes.values() for c in o.cards]
    ids += [s["uuid"] for o in outcomes.values() for c in o.cards for s in c.get("suggestions", [])]
    assert len(ids) == len(set(ids)) > 0


def test_suggested_resources_are_valid_r4(outcomes: dict[str, Outcome]) -> None:
    resources = [
        a["resource"]
        for o in outcomes.values()
        for c in o.cards
        for s in c.get("suggestions", [])
        for a in s["actions"]
        if "resource" in a
    ]
    assert resources, "the examples should produce at least one suggestion with a resource"
    for resource in resources:
        model = {"MedicationRequest": MedicationRequest, "ServiceRequest": ServiceRequest}[resource["resourceType"]]
        parsed = model.model_validate(resource)
        if resource["resourceType"] == "MedicationRequest":
            assert parsed.medicationCodeableConcept is not None
            dose = resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
            assert dose["unit"] == "mg" and dose["value"] > 0


def test_a_non_imatinib_order_gets_no_cards(outcomes: dict[str, Outcome]) -> None:
    assert outcomes["order-sign-non-imatinib-order.json"].response == {"cards": []}


def test_moderate_renal_new_start_suggests_half_the_dose(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["order-sign-new-start-moderate-renal.json"]
    assert (outcome.decision.dose.action, outcome.decision.dose.daily_mg) == ("change", 200)
    card = card_of_rule(outcome, "IMA-RENAL-020")
    suggestion = dose_suggestion(card)
    (action,) = suggestion["actions"]
    assert suggestion["label"] == "Change to 200 mg once daily: 2 x 100 mg tablets"
    assert action["type"] == "update" and action["resource"]["id"] == "rx-ima-new"
    assert action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 200
    # the fact behind the derived renal class is shown with its label, never its id
    assert "Creatinine clearance: 35 mL/min" in card["detail"] and "renal.crcl" not in card["detail"]


def test_evaluate_prints_the_response_and_trace(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "fhir_examples" / "patient-view-low-trough-cml.json"
    assert main(["evaluate", str(path), "--now", NOW, "--trace"]) == 0
    body = json.loads(capsys.readouterr().out)
    trace = body["trace"]
    assert set(trace) >= {"ruleset", "facts", "fired", "dose", "pk", "warnings"}
    assert set(trace["ruleset"]) == {"digest", "version"} and len(trace["ruleset"]["digest"]) == 64
    assert all(set(f) >= {"rule", "version"} for f in trace["fired"])
    assert trace["dose"]["action"] in ("withhold", "change", "keep", "none")
    assert set(trace["pk"]) >= {"method", "cmin_pred", "cmin_p05", "cmin_p95", "p_target", "cl", "v"}
    assert trace["pk"]["method"] == "map"
    assert not list(RESPONSE.iter_errors({"cards": body["cards"]}))


def test_evaluate_without_trace_prints_only_cards(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "fhir_examples" / "order-sign-non-imatinib-order.json"
    assert main(["evaluate", str(path), "--now", NOW]) == 0
    assert json.loads(capsys.readouterr().out) == {"cards": []}


@pytest.mark.parametrize(
    ("body", "path_in_message"),
    [
        ("this is not json", "$"),
        ('{"hookInstance": "x", "context": {}}', "hook"),
        (
            '{"hook": "order-sign", "hookInstance": "x", "context": {}, "prefetch": {"p": "<html>Error</html>"}}',
            "prefetch.p",
        ),
    ],
)
def test_invalid_requests_give_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, path_in_message: str
) -> None:
    request = tmp_path / "request.json"
    request.write_text(body)
    assert main(["evaluate", str(request), "--now", NOW]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("imatinib-cds: invalid input: ") and path_in_message in err[0]


def test_a_missing_file_and_a_bad_clock_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "no/such/request.json"]) == 2
    assert main(["evaluate", str(EXAMPLES[0]), "--now", "yesterday"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
