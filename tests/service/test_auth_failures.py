"""Authentication failures in aggregate (issue 15 item 9): counted per minute on every endpoint, no chain entry
per unauthenticated call, and a per-client rate limit for refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.auth_failures import AuthFailureLog
from cds.service.config import ServiceConfig, load_config
from cds.service.rate_limit import RefusalLimiter
from tests.conftest import examples_clock
from tests.service.conftest import example, service_for
from tests.service.test_integration import ISS, bearer, secured, signing_key

__all__ = ["secured", "signing_key"]  # fixtures shared with the integration tests

HOOK = "/cds-services/imatinib-order-sign"


def counts(audit: AuditStore, app_state: object) -> dict[tuple[object, ...], tuple[object, object]]:
    log: AuthFailureLog = app_state.auth_failures  # type: ignore[attr-defined]
    log.flush()
    return {(r["issuer"], r["reason"], r["endpoint"]): (r["count"], r["throttled"]) for r in log.rows()}


def test_unauthenticated_calls_are_counted_not_chained_on_every_endpoint(
    secured: ServiceConfig, audit: AuditStore, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    app = create_app(replace(secured, refusal_burst=100), audit=audit, clock=examples_clock)
    wrong_aud = bearer(signing_key, secured.base + "/cds-services")  # a real client's token, for another endpoint
    with TestClient(app) as client:
        statuses = [client.post(HOOK, json=body).status_code for _ in range(15)]
        statuses += [client.get("/cds-services").status_code for _ in range(3)]
        statuses += [client.post(HOOK + "/feedback", json={"feedback": []}).status_code for _ in range(2)]
        statuses.append(client.post(HOOK, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code)
        statuses.append(client.post(HOOK, json=body, headers=wrong_aud).status_code)
        assert statuses == [401] * 22
        assert audit.count() == 0  # not one fsync'd chain entry for 22 refusals
        rows = counts(audit, app.state.service)
    assert rows == {
        ("unknown", "no-credentials", "hook"): (15, 0),
        ("unknown", "no-credentials", "discovery"): (3, 0),
        ("unknown", "no-credentials", "feedback"): (2, 0),
        ("unknown", "not-bearer", "hook"): (1, 0),
        (ISS, "audience", "hook"): (1, 0),  # the trusted issuer the token claimed
    }


def test_counts_from_several_workers_and_flushes_add_up_in_one_row_per_key(audit: AuditStore) -> None:
    now = [1_800_000_000.0]  # 2027-01-15T08:00:00Z
    first = AuthFailureLog(audit.engine, flush_s=0, clock=lambda: now[0])
    second = AuthFailureLog(audit.engine, flush_s=0, clock=lambda: now[0])
    first.record("hook", None, "expired")
    now[0] += 10
    second.record("hook", None, "expired", throttled=True)
    second.flush()
    now[0] += 5
    first.record("hook", None, "expired")
    assert first.flush() == 1 and first.flush() == 0
    now[0] += 60  # the next minute is a row of its own
    first.record("hook", None, "expired")
    first.flush()
    rows = first.rows()
    assert [(r["minute"], r["count"], r["throttled"]) for r in rows] == [
        ("2027-01-15T08:00Z", 3, 1),
        ("2027-01-15T08:01Z", 1, 0),
    ]
    assert rows[0]["first_seen"] == "2027-01-15T08:00:00.000+00:00"
    assert rows[0]["last_seen"] == "2027-01-15T08:00:15.000+00:00"


def test_distinct_keys_in_memory_are_capped(audit: AuditStore) -> None:
    log = AuthFailureLog(audit.engine, max_keys=3, flush_s=0, clock=lambda: 1_800_000_000.0)
    for i in range(100):
        log.record("hook", f"https://issuer-{i}.example", "signature")
    pending = log.pending()
    assert len(pending) == 4  # three keys, then everything else under "other"
    assert sum(t.count for t in pending.values()) == 100
    assert pending[("2027-01-15T08:00Z", "unknown", "other", "hook")].count == 97


def test_a_failed_flush_keeps_the_counts(audit: AuditStore) -> None:
    log = AuthFailureLog(audit.engine, flush_s=0)
    log.record("discovery", None, "malformed")
    with audit.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE audit_auth_failures")  # any write fails
    assert log.flush() == 0 and sum(t.count for t in log.pending().values()) == 1


def test_refusals_beyond_the_burst_are_429_with_retry_after_and_a_real_client_still_gets_through(
    secured: ServiceConfig, audit: AuditStore, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    config = replace(secured, refusal_burst=3, refusal_rate_per_s=0.5)
    body = example("order-sign-new-start-moderate-renal.json")
    app = create_app(config, audit=audit, clock=examples_clock)
    with TestClient(app) as client:
        refused = [client.post(HOOK, json=body) for _ in range(5)]
        assert [r.status_code for r in refused] == [401, 401, 401, 429, 429]
        assert refused[3].headers["Retry-After"] == "2"  # one refusal's worth at 0.5 per second
        assert refused[3].json()["issue"][0]["code"] == "throttled"
        ok = client.post(service_for(body), json=body, headers=bearer(signing_key, config.base + service_for(body)))
        assert ok.status_code == 200  # failures draw on the budget, a valid call never does
        rows = counts(audit, app.state.service)
    assert rows == {("unknown", "no-credentials", "hook"): (5, 2)}


def test_the_limiter_refills_and_is_per_client() -> None:
    now = [0.0]
    limiter = RefusalLimiter(2, 1.0, max_clients=2, clock=lambda: now[0])
    assert [limiter.refuse("a") for _ in range(3)] == [None, None, 1]
    assert limiter.refuse("b") is None  # another client has its own budget
    now[0] += 1.0
    assert limiter.refuse("a") is None and limiter.refuse("a") == 1
    assert RefusalLimiter(0, 1.0).refuse("a") is None  # burst 0: no limit


def test_settings_from_the_environment() -> None:
    config = load_config(
        env={
            "IMATINIB_CDS_REFUSAL_BURST": "5",
            "IMATINIB_CDS_REFUSAL_RATE_PER_S": "0.25",
            "IMATINIB_CDS_AUTH_FAILURE_KEYS": "50",
            "IMATINIB_CDS_AUTH_FAILURE_FLUSH_S": "30",
        }
    )
    assert (config.refusal_burst, config.refusal_rate_per_s) == (5, 0.25)
    assert (config.auth_failure_keys, config.auth_failure_flush_s) == (50, 30.0)


@pytest.mark.parametrize("endpoint", ["hook", "discovery", "feedback"])
def test_no_limit_and_no_count_without_trusted_clients(client: TestClient, audit: AuditStore, endpoint: str) -> None:
    """Loopback-only mode (no clients configured) authenticates nobody, so nothing is refused or counted."""
    path = {"hook": HOOK, "discovery": "/cds-services", "feedback": HOOK + "/feedback"}[endpoint]
    response = client.get(path) if endpoint == "discovery" else client.post(path, json={"feedback": []})
    assert response.status_code != 401
    assert client.app.state.service.auth_failures.pending() == {}  # type: ignore[attr-defined]
