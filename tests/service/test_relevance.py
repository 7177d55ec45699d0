"""Relevance through HTTP: the Sandbox's medication-less order-select draft is 200 with no cards, and audited."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cds.audit import AuditStore
from tests.service.conftest import example, service_for


def test_the_sandbox_draft_without_medication_is_200_with_no_cards(client: TestClient, audit: AuditStore) -> None:
    body = example("order-select-sandbox-no-medication.json")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert "intent" not in draft and "medicationCodeableConcept" not in draft
    response = client.post(service_for(body), json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"cards": []}
    entry = audit.decision(body["hookInstance"])
    assert entry is not None
    payload = entry["payload"]
    assert payload["http_status"] == 200 and payload["cards"] == []
    assert payload["relevance"]["relevant"] is False
    assert "MedicationRequest/request-123 names no medication" in payload["relevance"]["why"]


def test_an_unrelated_order_sign_is_audited_with_the_cards_it_did_not_show(
    client: TestClient, audit: AuditStore
) -> None:
    body = example("order-sign-unrelated-drafts-on-imatinib.json")
    assert client.post(service_for(body), json=body).json() == {"cards": []}
    payload = audit.decision(body["hookInstance"])["payload"]  # type: ignore[index]
    assert "IMA-TDMIND-007" in [f["rule"] for f in payload["fired"]]
    assert [d["rule"] for d in payload["relevance"]["dropped"]] == ["IMA-TDMIND-007"]


def test_an_imatinib_draft_whose_dose_cannot_be_read_is_still_a_400(client: TestClient) -> None:
    body = example("order-select-imatinib-selected.json")
    body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]["timing"] = "daily"
    response = client.post(service_for(body), json=body)
    assert response.status_code == 400
    (issue,) = response.json()["issue"]
    assert "context.draftOrders.entry[0].resource.dosageInstruction[0]" in str(issue)
