"""The CDS Hooks service through TestClient: discovery, calls, feedback, errors, audit, reload, CORS."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from cds.audit import AuditStore
from cds.cards.schema import response_schema
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from cds.service.config import ServiceConfig
from cds.service.discovery import discovery_document
from tests.conftest import examples_clock, make_rules_root
from tests.service.conftest import EXAMPLES, example, service_for

RESPONSE = Draft202012Validator(response_schema())
TOKEN_PATTERN = "{{"


def test_discovery_lists_one_service_per_hook_generated_from_the_rules(client: TestClient) -> None:
    body = client.get("/cds-services").json()
    assert [(s["hook"], s["id"]) for s in body["services"]] == [
        ("order-sign", "imatinib-order-sign"),
        ("order-select", "imatinib-order-select"),
        ("patient-view", "imatinib-patient-view"),
    ]
    pipeline = Pipeline()
    assert body == discovery_document(pipeline.rule_set, pipeline.terminology)
    allowed = {"{{context.patientId}}", "{{context.userId}}", "{{context.encounterId}}"}
    for service in body["services"]:
        assert {"patient", "conditions", "medications", "observations"} <= set(service["prefetch"])
        for template in service["prefetch"].values():
            tokens = {f"{{{{{t.split('}}')[0]}}}}}" for t in template.split(TOKEN_PATTERN)[1:]}
            assert tokens <= allowed, template
            assert "_sort" not in template or "_sort=-date" in template


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_gets_its_cards(client: TestClient, path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    response = client.post(service_for(body), json=body)
    assert response.status_code == 200, response.text
    assert [e.message for e in RESPONSE.iter_errors(response.json())] == []
    expected = Pipeline().run(body, now=EXAMPLES_EVALUATION_TIME).response
    assert [c["summary"] for c in response.json()["cards"]] == [c["summary"] for c in expected["cards"]]


def test_a_decision_is_audited_with_its_trace_before_the_response(client: TestClient, audit: AuditStore) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    cards = client.post(service_for(body), json=body).json()["cards"]
    record = audit.decision(body["hookInstance"])
    assert record is not None
    payload = record["payload"]
    assert payload["status"] == "ok" and payload["http_status"] == 200
    assert payload["cards"] == cards
    assert {f["rule"] for f in payload["fired"]} >= {"IMA-RENAL-020"}
    assert len(payload["ruleset"]["digest"]) == 64 and len(payload["request_digest"]) == 64
    assert payload["facts"]["renal.crcl"] > 0 and payload["latency_ms"] > 0


def test_feedback_round_trip_is_recorded_and_linked(client: TestClient, audit: AuditStore) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    card = client.post(service_for(body), json=body).json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-25T12:05:00Z",
            }
        ]
    }
    response = client.post(service_for(body) + "/feedback", json=feedback)
    assert response.status_code == 200 and response.json() == {"recorded": 1}
    (entry,) = audit.feedback_for(body["hookInstance"])
    assert entry["payload"]["feedback"] == feedback["feedback"][0]
    assert entry["payload"]["decision_seq"] == audit.decision(body["hookInstance"])["seq"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("feedback", "path"),
    [
        (
            {
                "feedback": [
                    {"card": "no-such-card", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:05:00Z"}
                ]
            },
            "feedback[0].card",
        ),
        (
            {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-11-25T12:05:00Z"}]},
            "feedback[0]",
        ),
        ({"nope": []}, "$"),
    ],
)
def test_bad_feedback_is_400_naming_the_path(client: TestClient, feedback: dict[str, Any], path: str) -> None:
    response = client.post("/cds-services/imatinib-order-sign/feedback", json=feedback)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [path]


def test_missing_prefetch_without_a_reachable_fhir_server_is_412(client: TestClient, audit: AuditStore) -> None:
    body = example("patient-view-tdm-due.json")
    body.pop("prefetch")
    response = client.post(service_for(body), json=body)
    assert response.status_code == 412
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert set(outcome["issue"][0]["expression"]) == {
        "prefetch.conditions",
        "prefetch.medications",
        "prefetch.observations",
        "prefetch.patient",
    }
    assert audit.decision(body["hookInstance"])["payload"]["http_status"] == 412  # type: ignore[index]


def test_data_under_other_key_names_counts(client: TestClient) -> None:
    body = example("patient-view-low-trough-cml.json")
    body["prefetch"] = {
        "everything": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                e
                for v in body["prefetch"].values()
                for e in ([{"resource": v}] if v["resourceType"] != "Bundle" else v.get("entry", []))
            ],
        }
    }
    # patient, conditions, medications and observations all arrived, under one key
    assert client.post(service_for(body), json=body).status_code == 200


@pytest.mark.parametrize(
    ("content", "status", "expression"),
    [
        (b"not json", 400, ["$"]),
        (b'{"hookInstance": "x", "context": {}}', 400, ["hook"]),
        (b'{"hook": "patient-view", "hookInstance": "x", "context": {}}', 400, None),
    ],
)
def test_bad_requests_are_400_operation_outcomes(
    client: TestClient, content: bytes, status: int, expression: list[str] | None
) -> None:
    response = client.post(
        "/cds-services/imatinib-order-sign", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    issue = response.json()["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    if expression:
        assert issue["expression"] == expression


def test_unknown_service_is_404(client: TestClient) -> None:
    assert client.post("/cds-services/nope", json={}).status_code == 404


def test_a_large_body_is_413(config: ServiceConfig, audit: AuditStore) -> None:
    from dataclasses import replace

    from cds.service.app import create_app

    with TestClient(create_app(replace(config, max_body_bytes=1000), audit=audit, clock=examples_clock)) as small:
        response = small.post("/cds-services/imatinib-order-sign", content=b"{" + b" " * 2000 + b"}")
    assert response.status_code == 413 and response.json()["resourceType"] == "OperationOutcome"


def test_a_500_never_carries_internals(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(state.pipeline, "run", explode)
    body = example("patient-view-tdm-due.json")
    response = client.post(service_for(body), json=body)
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_audit_chain_verifies_after_1000_calls_and_detects_an_edit(
    client: TestClient, audit: AuditStore, config: ServiceConfig
) -> None:
    body = example("order-sign-missing-creatinine.json")
    for i in range(1000):
        body["hookInstance"] = f"00000000-0000-4000-8000-{i:012d}"
        assert client.post(service_for(body), json=body).status_code == 200
    report = audit.verify()
    assert report.ok and report.entries == 1000
    with sqlite3.connect(config.database_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "UPDATE audit_entries SET payload = replace(payload, 'IMA-RENAL-040', 'IMA-RENAL-041') WHERE seq = 500"
        )
    report = audit.verify()
    assert not report.ok and report.first_broken_seq == 500 and "changed" in report.reason


def test_health_evaluates_a_canary(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and len(response.json()["ruleset"]["digest"]) == 64


def test_cors_preflight_needs_no_token_and_allows_only_listed_origins(client: TestClient) -> None:
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = client.options("/cds-services/imatinib-order-sign", headers={"Origin": "https://ehr.example.org", **headers})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ehr.example.org"
    refused = client.options("/cds-services/imatinib-order-sign", headers={"Origin": "https://evil.example", **headers})
    assert "access-control-allow-origin" not in refused.headers


def test_rule_reload_swaps_a_valid_set_and_refuses_an_invalid_one(client: TestClient, tmp_path: Path) -> None:
    from dataclasses import replace

    state = client.app.state.service  # type: ignore[attr-defined]
    before = state.pipeline.rule_set.digest
    good = make_rules_root(tmp_path / "good", *sorted((Path(state.config.rules_dir) / "imatinib").glob("*.yaml")))
    for extra in ("mapping.yaml", "terminology", "models", "guideline-map.yaml"):
        source = Path(state.config.rules_dir) / extra
        if source.is_dir():
            import shutil

            shutil.copytree(source, good / extra)
        elif source.exists():
            (good / extra).write_bytes(source.read_bytes())
    renal = good / "imatinib" / "renal.yaml"
    renal.write_text(renal.read_text(encoding="utf-8") + "\n# reviewed again\n", encoding="utf-8")
    (good / "policy.yaml").write_text((good / "policy.yaml").read_text() + "\n# local note\n")
    state.config = replace(state.config, rules_dir=good)
    assert state.reload_rules()
    bad = good / "imatinib" / "broken.yaml"
    bad.write_text("ruleset: [")
    assert not state.reload_rules()
    assert state.pipeline.rules_dir == good and state.pipeline.rule_set.digest == before  # comments change nothing
    body = example("order-sign-new-start-moderate-renal.json")
    assert client.post(service_for(body), json=body).status_code == 200
