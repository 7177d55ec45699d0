"""Decisions, explanation links, card ids and feedback belong to (issuer, hookInstance) (issue 15, item 7): two
trusted clients that reuse one hookInstance never see, nor answer for, each other's decision."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.config import ClientConfig, ServiceConfig
from cds.web.links import LinkSigner
from tests.conftest import examples_clock
from tests.service.conftest import example, service_for
from tests.web.helpers import explain_links, path_of

SHARED = "5f0c9e1a-0000-4000-8000-000000000001"  # the hookInstance both clients send


@dataclass
class Client:
    iss: str
    key: ec.EllipticCurvePrivateKey

    def headers(self, audience: str) -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": self.iss, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        token = jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": "k1", "typ": "JWT"})
        return {"Authorization": f"Bearer {token}"}


@dataclass
class Site:
    http: TestClient
    config: ServiceConfig
    audit: AuditStore
    a: Client
    b: Client

    def call(self, who: Client, body: dict[str, Any]) -> dict[str, Any]:
        path = service_for(body)
        response = self.http.post(path, json=body, headers=who.headers(self.config.base + path))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def feedback(self, who: Client, body: dict[str, Any], card: str) -> Any:
        path = service_for(body) + "/feedback"
        item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:05:00Z"}
        return self.http.post(path, json={"feedback": [item]}, headers=who.headers(self.config.base + path))


@pytest.fixture()
def site(tmp_path: Path, config: ServiceConfig, audit: AuditStore) -> Iterator[Site]:
    clients = []
    for name in ("a", "b"):
        key = ec.generate_private_key(ec.SECP384R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwks = tmp_path / f"{name}.json"
        jwks.write_text(json.dumps({"keys": [dict(jwk, kid="k1", alg="ES384", use="sig")]}))
        clients.append((Client(f"https://ehr-{name}.example.org/cds", key), str(jwks)))
    secured = replace(config, trusted_clients=tuple(ClientConfig(iss=c.iss, jwks_file=j) for c, j in clients))
    with TestClient(create_app(secured, audit=audit, clock=examples_clock)) as http:
        yield Site(http, secured, audit, clients[0][0], clients[1][0])


def shared(name: str) -> dict[str, Any]:
    return dict(example(name), hookInstance=SHARED)


def test_card_ids_differ_between_clients_for_one_request(site: Site) -> None:
    body = shared("order-sign-new-start-moderate-renal.json")
    ids_a = {c["uuid"] for c in site.call(site.a, body)["cards"]}
    ids_b = {c["uuid"] for c in site.call(site.b, body)["cards"]}
    assert ids_a and len(ids_a) == len(ids_b) and not ids_a & ids_b


def test_a_link_opens_only_its_own_clients_decision(site: Site) -> None:
    body_a, body_b = shared("order-sign-new-start-moderate-renal.json"), shared("patient-view-low-trough-cml.json")
    link_a = path_of(explain_links(site.call(site.a, body_a))[0])
    link_b = path_of(explain_links(site.call(site.b, body_b))[0])  # later: the latest decision for SHARED
    entry_a, entry_b = site.audit.decision(SHARED, site.a.iss), site.audit.decision(SHARED, site.b.iss)
    assert entry_a is not None and entry_b is not None
    assert entry_a["payload"]["patient_ref"] != entry_b["payload"]["patient_ref"]
    page_a, page_b = site.http.get(link_a), site.http.get(link_b)
    assert page_a.status_code == page_b.status_code == 200
    # each page names its entry's position and hash (B's page also shows A's hash: the link to the previous entry)
    assert f"entry {entry_a['seq']} of" in page_a.text and entry_a["entry_hash"] in page_a.text
    assert entry_b["entry_hash"] not in page_a.text
    assert f"entry {entry_b['seq']} of" in page_b.text and entry_b["entry_hash"] in page_b.text


def test_a_token_moved_to_another_client_is_refused(site: Site) -> None:
    site.call(site.a, shared("order-sign-new-start-moderate-renal.json"))
    site.call(site.b, shared("patient-view-low-trough-cml.json"))
    token = LinkSigner(site.config.link_secret_file.read_bytes().strip(), 600).token(SHARED, site.a.iss)
    expires, _, mac = token.split(".")
    as_b = base64.urlsafe_b64encode(site.b.iss.encode()).decode().rstrip("=")
    for forged in (f"{expires}.{as_b}.{mac}", f"{expires}.{mac}"):  # another issuer; no issuer at all
        assert site.http.get(f"/explain/{SHARED}?token={forged}").status_code == 403
    assert site.http.get(f"/explain/{SHARED}?token={token}").status_code == 200


def test_feedback_is_attributed_to_the_client_that_was_shown_the_card(site: Site) -> None:
    body = shared("order-sign-new-start-moderate-renal.json")
    card_a = site.call(site.a, body)["cards"][0]["uuid"]
    site.call(site.b, body)
    refused = site.feedback(site.b, body, card_a)  # B names a card only A was shown
    assert refused.status_code == 400 and refused.json()["issue"][0]["expression"] == ["feedback[0].card"]
    assert site.feedback(site.a, body, card_a).json() == {"recorded": 1}
    (recorded,) = site.audit.feedback_for(SHARED, site.a.iss)
    assert recorded["client"] == site.a.iss and recorded["payload"]["client"]["iss"] == site.a.iss
    assert recorded["payload"]["decision_seq"] == site.audit.decision(SHARED, site.a.iss)["seq"]  # type: ignore[index]
    assert site.audit.feedback_for(SHARED, site.b.iss) == []
    assert site.audit.verify().ok
