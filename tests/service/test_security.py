"""Security hardening (issue 15): no credential stored or echoed, bounded parsing, links that stay links."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from cds.audit import AuditStore
from cds.service.config import ServiceConfig
from cds.service.health import CachedWriteProbe
from cds.service.json_body import nesting_depth
from cds.service.records import safe_digest
from cds.service.redact import REDACTED, redacted, scrub_text
from tests.service.conftest import example, service_for

SECRET = "SECRET-7f3a9c"


def stored_bytes(config: ServiceConfig) -> bytes:
    """Every byte of the audit database: the main file and its write-ahead log."""
    db = Path(config.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {SECRET}",
        {"access_token": SECRET, "token_type": "Bearer", "expires_in": "soon", "scope": "x", "subject": "y"},
        [f"Bearer {SECRET}"],
        {"Authorization": f"Bearer {SECRET}"},
    ],
    ids=["string", "object-with-a-bad-field", "list", "nested-header"],
)
def test_a_malformed_fhir_authorization_is_never_echoed_stored_or_logged(
    client: TestClient,
    audit: AuditStore,
    config: ServiceConfig,
    caplog: pytest.LogCaptureFixture,
    authorization: object,
) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    body.update(fhirServer="https://fhir.example.org", fhirAuthorization=authorization)
    with caplog.at_level(logging.DEBUG):
        response = client.post(service_for(body), json=body)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"][0].startswith("fhirAuthorization")
    assert SECRET not in response.text
    entry = audit.decision(body["hookInstance"])
    assert entry is not None and entry["payload"]["http_status"] == 400  # the refusal is recorded ...
    audit.dispose()
    assert SECRET.encode() not in stored_bytes(config)  # ... without the credential
    assert SECRET not in caplog.text


def test_feedback_never_stores_a_credential(client: TestClient, audit: AuditStore, config: ServiceConfig) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    card = client.post(service_for(body), json=body).json()["cards"][0]
    reason = {"userComment": "not now", "authorization": f"Bearer {SECRET}"}  # the schema lets extra keys through
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:00:00Z"}
    response = client.post(service_for(body) + "/feedback", json={"feedback": [dict(item, overrideReason=reason)]})
    assert response.status_code == 200 and response.json() == {"recorded": 1}
    stored = audit.feedback_for(body["hookInstance"])[0]["payload"]["feedback"]
    assert stored["overrideReason"] == {"userComment": "not now"}
    audit.dispose()
    assert SECRET.encode() not in stored_bytes(config)


def test_redaction_keeps_harmless_fields_and_the_digest_of_a_wellformed_request() -> None:
    request = {
        "hook": "order-sign",
        "fhirAuthorization": {"access_token": SECRET, "token_type": "Bearer", "scope": "x", "subject": "y"},
        "context": {"headers": [{"Authorization": f"Bearer {SECRET}"}]},
    }
    clean = redacted(request)
    assert SECRET not in json.dumps(clean)
    assert clean["fhirAuthorization"] == {"token_type": "Bearer", "scope": "x", "subject": "y"}
    assert redacted({"fhirAuthorization": f"Bearer {SECRET}"}) == {"fhirAuthorization": REDACTED}
    plain = {"hook": "order-sign", "context": {}}
    assert redacted(plain) is plain
    assert scrub_text(f"failed with Bearer {SECRET} and eyJhbGciOi.eyJzdWIi.sig") == (
        f"failed with {REDACTED} and {REDACTED}"
    )


def test_the_request_digest_never_raises() -> None:
    assert safe_digest({"hookInstance": "x\ud800"}) is not None
    with_token = {"a": "b", "fhirAuthorization": {"access_token": SECRET, "scope": "x"}}
    assert safe_digest(redacted(with_token)) == safe_digest({"a": "b", "fhirAuthorization": {"scope": "x"}})


HOSTILE = {
    "deep nesting": (b'{"hook": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests deeper"),
    "unclosed deep nesting": (b"[" * 100_000, "nests deeper"),
    "5001-digit integer": (b'{"hook": "order-sign", "n": ' + b"9" * 5001 + b"}", "5001 characters"),
    "huge float": (b'{"n": 1.' + b"5" * 400 + b"e5}", "characters"),
}


def _with_lone_surrogate(where: str) -> bytes:
    body = example("order-sign-new-start-moderate-renal.json")
    raw = json.dumps(body)
    if where == "hookInstance":
        return raw.replace(body["hookInstance"], "abc\\ud800", 1).encode()
    return raw.replace('"resourceType": "Patient"', '"resourceType": "Patient", "note": "x\\udc00y"', 1).encode()


@pytest.mark.parametrize("endpoint", ["hook", "feedback"])
@pytest.mark.parametrize("name", [*HOSTILE, "lone surrogate in hookInstance", "lone surrogate in a resource"])
def test_hostile_json_is_a_400_naming_what_is_wrong(
    client: TestClient, audit: AuditStore, endpoint: str, name: str
) -> None:
    if name.startswith("lone surrogate"):
        raw, expected = _with_lone_surrogate(name.rsplit(" ", 1)[-1]), "unpaired UTF-16 surrogate"
    else:
        raw, expected = HOSTILE[name]
    path = "/cds-services/imatinib-order-sign" + ("/feedback" if endpoint == "feedback" else "")
    before = audit.count()
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert response.json()["resourceType"] == "OperationOutcome" and expected in issue["diagnostics"]
    if name == "lone surrogate in hookInstance":
        assert issue["expression"] == ["hookInstance"]
    if endpoint == "hook":  # a refused service call is audited, as every decision is
        assert audit.count() == before + 1
        assert audit.verify().ok


def test_a_surrogate_pair_is_not_refused(client: TestClient) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    raw = json.dumps(body).replace('"resourceType": "Patient"', '"resourceType": "Patient", "note": "\\ud83d\\ude00"')
    assert client.post(service_for(body), content=raw.encode()).status_code == 200


@pytest.mark.parametrize("hook_instance", ["a b<c>?x=1#y", "ward/3/bed 7", "x/plot.png"])
def test_hook_instance_is_percent_encoded_in_card_links(client: TestClient, hook_instance: str) -> None:
    body = example("patient-view-low-trough-cml.json")  # a level on record: the page has a plot
    body["hookInstance"] = hook_instance
    response = client.post(service_for(body), json=body)
    assert response.status_code == 200
    links = [link["url"] for card in response.json()["cards"] for link in card.get("links") or []]
    assert links
    for url in links:
        parts = urlsplit(url)
        assert parts.fragment == "" and set(parse_qs(parts.query)) == {"token"}
        assert unquote(parts.path) == f"/explain/{hook_instance}" and " " not in url and "<" not in url
        page = client.get(f"{parts.path}?{parts.query}")
        assert page.status_code == 200, page.text[:300]
        plot = client.get(f"{parts.path}/plot.png?{parts.query}")
        assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"


def _refuse_writes(audit: AuditStore, how: str) -> None:
    """New connections to the audit database cannot record a decision: SQLite's own read-only state
    ("attempt to write a readonly database"), or its page limit at the current size ("database or disk is
    full", SQLITE_FULL, as on a full volume: reads and small rewrites still work, a new entry does not)."""
    with audit.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())

    def restrict(dbapi_connection: Any, _record: Any) -> None:
        if how == "read-only":
            dbapi_connection.execute("PRAGMA query_only=ON")
        else:
            dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(audit.engine, "connect", restrict)
    audit.engine.dispose()  # the pooled connections go; new ones are restricted


@pytest.mark.parametrize("how", ["read-only", "full"])
def test_health_is_503_while_decisions_cannot_be_recorded(client: TestClient, audit: AuditStore, how: str) -> None:
    assert client.get("/health").status_code == 200
    _refuse_writes(audit, how)
    client.app.state.service.write_probe = CachedWriteProbe(audit.probe)  # no cached answer from before
    body = example("order-sign-new-start-moderate-renal.json")
    assert client.post(service_for(body), json=body).status_code == 503  # a decision cannot be recorded ...
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "failing"  # ... and health says so


def test_the_write_probe_is_cached_for_its_ttl() -> None:
    calls: list[float] = []
    now = [100.0]
    fail = [False]

    def probe() -> None:
        calls.append(now[0])
        if fail[0]:
            raise OSError("disk full")

    cached = CachedWriteProbe(probe, ttl_s=1.5, clock=lambda: now[0])
    assert cached.writable() and cached.writable() and len(calls) == 1
    fail[0] = True
    now[0] += 1.0
    assert cached.writable() and len(calls) == 1  # still the cached answer
    now[0] += 0.5
    assert not cached.writable() and len(calls) == 2  # probed again: the disk is full now


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TRICKY_TEXT = st.text(alphabet='[]{}"\\ab\u00e9', max_size=8)
# st.deferred, not st.recursive: the latter's "extend must use its argument" check misfires in a full run
_NESTED: st.SearchStrategy[Any] = st.deferred(
    lambda: st.one_of(
        st.none(),
        st.integers(),
        _TRICKY_TEXT,
        st.lists(_NESTED, max_size=3),
        st.dictionaries(_TRICKY_TEXT, _NESTED, max_size=3),
    )
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(value=_NESTED, ascii_only=st.booleans())
def test_nesting_depth_ignores_brackets_in_strings(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_depth(raw) == _depth(value)


def test_a_decisions_recorded_inputs_keep_no_access_token(
    client: TestClient, audit: AuditStore, config: ServiceConfig
) -> None:
    """The request kept for replay is the request without its credential (it is replayed without fetching)."""
    body = example("order-sign-new-start-moderate-renal.json")
    token = {
        "access_token": SECRET,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "s",
    }
    body.update(fhirServer="https://fhir.example.org", fhirAuthorization=token)
    assert client.post(service_for(body), json=body).status_code == 200
    entry = audit.decision(body["hookInstance"])
    assert entry is not None
    kept = json.loads(entry["payload"]["inputs"]["request"])  # kept as canonical JSON text
    assert kept["fhirAuthorization"] == {k: v for k, v in token.items() if k != "access_token"}
    assert kept["prefetch"] == body["prefetch"]
    audit.dispose()
    assert SECRET.encode() not in stored_bytes(config)
