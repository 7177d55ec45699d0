"""/metrics (issue 17): what operators alert on is counted; only loopback (or the configured networks) reads it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.engine.ruleset import load_rules
from cds.service.app import create_app
from cds.service.config import ClientConfig, ConfigError, ServiceConfig, load_config
from cds.service.metrics import may_scrape
from cds.shipped import export_rules
from tests.conftest import RULES, examples_clock
from tests.service.conftest import example, service_for
from tests.service.metrics import Samples, samples

LOOPBACK = ("127.0.0.1", 50000)
HOOK = {"endpoint": "/cds-services/{service_id}", "service": "imatinib-order-sign", "status": "200"}


@pytest.fixture()
def local(config: ServiceConfig, audit: AuditStore) -> Iterator[TestClient]:
    """A client calling from loopback, as a Prometheus on the same host does."""
    with TestClient(create_app(config, audit=audit, clock=examples_clock), client=LOOPBACK) as http:
        yield http


def scrape(http: TestClient) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_calls_cards_feedback_and_commits_are_counted(local: TestClient) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    card = local.post(service_for(body), json=body).json()["cards"][0]
    assert local.get("/cds-services").status_code == 200
    accepted = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-25T12:05:00Z"}
    accepted["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    overridden = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:06:00Z"}
    assert local.post(service_for(body) + "/feedback", json={"feedback": [accepted, overridden]}).status_code == 200
    assert local.post("/cds-services/no-such-service", json=body).status_code == 404

    m = scrape(local)
    assert m.value("imatinib_cds_requests_total", **HOOK) == 1
    assert m.value("imatinib_cds_request_duration_seconds_count", **HOOK) == 1
    assert m.value("imatinib_cds_requests_total", endpoint="/cds-services", status="200") == 1
    # an unknown service id is client text: it never becomes a label value
    assert m.value("imatinib_cds_requests_total", endpoint="/cds-services/{service_id}", service="", status="404") == 1
    assert not [s for s in m.samples if "no-such-service" in json.dumps(s.labels)]
    assert m.value("imatinib_cds_cards_total", service="imatinib-order-sign", indicator="warning") == 1
    assert m.value("imatinib_cds_rule_cards_total", rule="IMA-RENAL-020", indicator="warning") == 1
    assert m.value("imatinib_cds_feedback_total", outcome="accepted") == 1
    assert m.value("imatinib_cds_feedback_total", outcome="overridden") == 1
    assert m.value("imatinib_cds_suggestions_accepted_total", service="imatinib-order-sign") == 1
    assert m.value("imatinib_cds_audit_commit_seconds_count") == 3  # the decision and two feedback entries
    assert m.value("imatinib_cds_audit_commit_failures_total") == 0
    rule_set = load_rules(RULES)
    assert m.value("imatinib_cds_ruleset_info", version=rule_set.version, digest=rule_set.digest) == 1


def test_a_failed_audit_commit_is_counted(
    local: TestClient, audit: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(pending: object) -> list[int]:
        raise OSError("disk full")

    monkeypatch.setattr(audit, "_append_many", broken)
    body = example("order-sign-new-start-moderate-renal.json")
    assert local.post(service_for(body), json=body).status_code == 503
    m = scrape(local)
    assert m.value("imatinib_cds_audit_commit_failures_total") >= 1
    assert m.value("imatinib_cds_requests_total", endpoint="/cds-services/{service_id}", status="503") == 1
    assert m.value("imatinib_cds_cards_total") == 0  # no advice without a record


def test_a_reload_moves_the_rule_set_info(local: TestClient, tmp_path: Path) -> None:
    state = local.app.state.service  # type: ignore[attr-defined]
    old = state.pipeline.rule_set
    pack = tmp_path / "pack"
    export_rules(pack)
    renal = pack / "imatinib" / "renal.yaml"
    renal.write_text(renal.read_text(encoding="utf-8").replace("version: 1.4.0", "version: 1.4.1", 1))
    state.config = replace(state.config, rules_dir=pack)
    assert state.reload_rules()
    new = state.pipeline.rule_set
    assert new.digest != old.digest
    m = scrape(local)
    assert m.value("imatinib_cds_ruleset_info", digest=new.digest) == 1
    assert m.value("imatinib_cds_ruleset_info", digest=old.digest) == 0


def test_authentication_refusals_are_counted_by_reason(
    tmp_path: Path, config: ServiceConfig, audit: AuditStore
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [dict(jwk, kid="k1", alg="ES384", use="sig")]}))
    client = ClientConfig(iss="https://ehr.example.org/cds", jwks_file=str(tmp_path / "jwks.json"))
    secured = replace(config, trusted_clients=(client,))
    with TestClient(create_app(secured, audit=audit, clock=examples_clock), client=LOOPBACK) as http:
        assert http.get("/cds-services").status_code == 401
        assert http.get("/cds-services", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
        m = scrape(http)  # /metrics needs no client token: it is for the operator's network, not for EHRs
    refusals = "imatinib_cds_auth_refusals_total"
    assert m.value(refusals, endpoint="discovery", reason="no-credentials", throttled="false") == 1
    assert m.value(refusals, endpoint="discovery", reason="malformed", throttled="false") == 1
    assert m.value("imatinib_cds_requests_total", endpoint="/cds-services", status="401") == 2


@pytest.mark.parametrize(
    ("client", "headers", "allowed", "may"),
    [
        pytest.param(("127.0.0.1", 1), {}, ("127.0.0.0/8", "::1/128"), True, id="loopback"),
        pytest.param(("::1", 1), {}, ("127.0.0.0/8", "::1/128"), True, id="loopback-v6"),
        pytest.param(("::ffff:127.0.0.1", 1), {}, ("127.0.0.0/8",), True, id="v4-mapped"),
        pytest.param(("10.1.2.3", 1), {}, ("127.0.0.0/8", "::1/128"), False, id="remote"),
        pytest.param(("10.1.2.3", 1), {}, ("10.1.0.0/16",), True, id="allowed-network"),
        pytest.param(("127.0.0.1", 1), {b"x-forwarded-for": b"203.0.113.9"}, ("127.0.0.0/8",), False, id="proxied"),
        pytest.param(("127.0.0.1", 1), {b"forwarded": b"for=203.0.113.9"}, ("127.0.0.0/8",), False, id="forwarded"),
        pytest.param(("testclient", 1), {}, ("127.0.0.0/8",), False, id="not-an-address"),
        pytest.param(None, {}, ("127.0.0.0/8",), False, id="no-peer"),
        pytest.param(("127.0.0.1", 1), {}, (), False, id="nobody"),
    ],
)
def test_who_may_scrape(
    client: tuple[str, int] | None, headers: dict[bytes, bytes], allowed: tuple[str, ...], may: bool
) -> None:
    assert may_scrape({"client": client, "headers": list(headers.items())}, allowed) is may


def test_metrics_are_refused_to_others(client: TestClient) -> None:
    refused = client.get("/metrics")  # TestClient's peer is "testclient", not a loopback address
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"


def test_metrics_allow_is_read_from_the_environment_and_checked(tmp_path: Path) -> None:
    config = load_config(env={"IMATINIB_CDS_METRICS_ALLOW": "10.0.0.0/8, 192.0.2.7"})
    assert config.metrics_allow == ("10.0.0.0/8", "192.0.2.7")
    with pytest.raises(ConfigError, match="metrics_allow"):
        load_config(env={"IMATINIB_CDS_METRICS_ALLOW": "10.0.0.0/33"})
    file = tmp_path / "config.yaml"
    file.write_text("metrics_allow: 10.0.0.0/8\n")
    with pytest.raises(ConfigError, match="metrics_allow must be a list"):
        load_config(file, env={})
