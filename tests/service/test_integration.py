"""The service as clients meet it: JWT-authenticated calls, FHIR fallback over real HTTP, a real uvicorn
process on loopback, and the audit store on PostgreSQL (when a database URL is given)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.audit.group import Pending
from cds.service.app import create_app
from cds.service.config import ClientConfig, ServiceConfig
from tests.conftest import ROOT, examples_clock
from tests.service.conftest import example, service_for
from tests.service.fhir_stub import FhirStub

ISS = "https://ehr.example.org/cds-client"
KID = "test-key-1"
POSTGRES_ENV = "IMATINIB_CDS_TEST_POSTGRES_URL"


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture()
def secured(tmp_path: Path, config: ServiceConfig, signing_key: ec.EllipticCurvePrivateKey) -> ServiceConfig:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [dict(public, kid=KID, alg="ES384", use="sig")]}))
    return replace(config, trusted_clients=(ClientConfig(iss=ISS, jwks_file=str(jwks)),))


def bearer(key: ec.EllipticCurvePrivateKey, audience: str, jti: str | None = None) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 300, "jti": jti or str(uuid.uuid4())}
    token = jwt.encode(claims, key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})
    return {"Authorization": f"Bearer {token}"}


def test_authenticated_calls(
    secured: ServiceConfig, audit: AuditStore, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    url = service_for(body)
    audience = secured.base + url
    with TestClient(create_app(secured, audit=audit, clock=examples_clock)) as client:
        assert client.post(url, json=body).status_code == 401
        assert client.get("/cds-services").status_code == 401
        assert (
            client.get("/cds-services", headers=bearer(signing_key, secured.base + "/cds-services")).status_code == 200
        )
        wrong_aud = bearer(signing_key, secured.base + "/cds-services/imatinib-patient-view")
        assert client.post(url, json=body, headers=wrong_aud).status_code == 401
        headers = bearer(signing_key, audience)
        ok = client.post(url, json=body, headers=headers)
        assert ok.status_code == 200 and ok.json()["cards"]
        replay = client.post(url, json=body, headers=headers)
        assert replay.status_code == 401 and replay.json() == {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "login"}],
        }
        preflight = client.options(
            url, headers={"Origin": "https://ehr.example.org", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200  # CORS preflight carries no token and needs none
    decision = audit.decision(body["hookInstance"])
    assert decision is not None and decision["payload"]["client"]["iss"] == ISS
    assert audit.verify().ok


def test_replay_is_rejected_across_workers_sharing_the_database(
    secured: ServiceConfig, tmp_path: Path, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    body = example("order-sign-missing-creatinine.json")
    headers = bearer(signing_key, secured.base + service_for(body))
    first, second = AuditStore(secured.database_url), AuditStore(secured.database_url)  # two workers' stores
    with (
        TestClient(create_app(secured, audit=first, clock=examples_clock)) as a,
        TestClient(create_app(secured, audit=second, clock=examples_clock)) as b,
    ):
        assert a.post(service_for(body), json=body, headers=headers).status_code == 200
        assert b.post(service_for(body), json=body, headers=headers).status_code == 401


def resources_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for value in body["prefetch"].values():
        if value["resourceType"] == "Bundle":
            found += [e["resource"] for e in value.get("entry", [])]
        else:
            found.append(value)
    return found


def test_missing_prefetch_is_fetched_from_an_allowed_fhir_server_over_http(
    config: ServiceConfig, audit: AuditStore
) -> None:
    body = example("patient-view-low-trough-cml.json")
    with TestClient(create_app(config, audit=audit, clock=examples_clock)) as client:
        expected = client.post(service_for(body), json=body).json()
    stub = FhirStub(resources_of(body), token="secret-access-token", page_size=3)
    with stub as base_url:
        bare = dict(
            body,
            fhirServer=base_url,
            hookInstance=str(uuid.uuid4()),
            fhirAuthorization={
                "access_token": "secret-access-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "cds-service",
            },
        )
        bare.pop("prefetch")
        allowed = replace(config, fhir_servers=(base_url,))
        with TestClient(create_app(allowed, audit=audit, clock=examples_clock)) as client:
            response = client.post(service_for(bare), json=bare)
        with TestClient(create_app(config, audit=audit, clock=examples_clock)) as client:
            refused = client.post(service_for(bare), json=bare)
    assert response.status_code == 200, response.text
    assert [c["summary"] for c in response.json()["cards"]] == [c["summary"] for c in expected["cards"]]
    assert any("_offset" in path for path, _ in stub.requests)  # pagination was followed
    assert refused.status_code == 412  # a FHIR server that is not allow-listed is never contacted
    entries = list(audit.export())
    assert "secret-access-token" not in json.dumps(entries)  # the token is never stored


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def live_server(tmp_path: Path) -> Iterator[str]:
    for base, _process in _serve(tmp_path):
        yield base


def _serve(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = dict(
        os.environ,
        IMATINIB_CDS_PORT=str(port),
        IMATINIB_CDS_DATABASE_URL=f"sqlite:///{tmp_path}/a.db",
        IMATINIB_CDS_LINK_SECRET_FILE=str(tmp_path / "secret"),
        IMATINIB_CDS_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cds.cli.main", "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("the server did not start: " + (tmp_path / "server.log").read_text())
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_a_real_uvicorn_process_answers_every_example(live_server: str) -> None:
    discovery = httpx.get(live_server + "/cds-services", timeout=10).json()
    assert len(discovery["services"]) == 3
    for path in sorted((ROOT / "fhir_examples").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        response = httpx.post(live_server + service_for(body), json=body, timeout=30)
        assert response.status_code == 200, (path.name, response.text)
    for card in response.json()["cards"]:
        assert card["links"][0]["url"].startswith(live_server + "/explain/")


def test_sighup_reloads_the_rules_without_downtime(tmp_path: Path) -> None:
    import signal

    server = _serve(tmp_path)
    base, process = next(server)
    try:
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "rules reloaded" not in (tmp_path / "server.log").read_text() and time.monotonic() < deadline:
            assert httpx.get(base + "/health", timeout=5).status_code == 200  # serving throughout
            time.sleep(0.2)
        assert "rules reloaded" in (tmp_path / "server.log").read_text()
        body = example("order-sign-new-start-moderate-renal.json")
        assert httpx.post(base + service_for(body), json=body, timeout=30).status_code == 200
    finally:
        server.close()


@pytest.fixture()
def postgres_store() -> Iterator[AuditStore]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it; e.g. postgresql+psycopg://cds:cds@127.0.0.1/cds_test)"
        )
    store = AuditStore(url)
    with store.engine.begin() as conn:
        for table in ("audit_entries", "audit_cards", "used_jtis"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("UPDATE audit_head SET seq = 0, entry_hash = '" + "0" * 64 + "'")
    yield store
    store.dispose()


def test_postgres_chain_stays_one_chain_under_concurrent_writers(postgres_store: AuditStore) -> None:
    url = postgres_store.url
    writers = [AuditStore(url) for _ in range(4)]  # as if four workers

    def write(store: AuditStore, n: int) -> None:
        for i in range(50):
            store.append("decision", f"h-{n}-{i}", "imatinib-order-sign", {"n": n, "i": i}, (f"card-{n}-{i}",))

    threads = [threading.Thread(target=write, args=(store, n)) for n, store in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = postgres_store.verify()
    assert report.ok and report.entries == 200
    with postgres_store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_entries SET payload = '{\"n\":9}' WHERE seq = 120")
    broken = postgres_store.verify()
    assert not broken.ok and broken.first_broken_seq == 120
    for store in writers:
        store.dispose()


def test_postgres_group_commit_points_a_card_at_its_latest_decision(postgres_store: AuditStore) -> None:
    first = Pending.of("decision", "retry", "imatinib-order-sign", {"try": 1}, ("card-1",))
    second = Pending.of("decision", "retry", "imatinib-order-sign", {"try": 2}, ("card-1", "card-2"))
    assert postgres_store.append_many([first, second]) == [1, 2]
    assert postgres_store.submit(Pending.of("decision", "again", "x", {}, ("card-2",))).result(timeout=30) == 3
    assert postgres_store.card("card-1") == ("retry", 2) and postgres_store.card("card-2") == ("again", 3)
    assert postgres_store.verify().ok


def test_postgres_jti_replay_across_workers(postgres_store: AuditStore) -> None:
    other = AuditStore(postgres_store.url)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    assert postgres_store.claim("jti-1", ISS, expires)
    assert not other.claim("jti-1", ISS, expires)
    assert other.claim("jti-1", "https://another-issuer.example", expires)
    other.dispose()
