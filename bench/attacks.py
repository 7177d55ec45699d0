"""Attacks from outside, counted: JWT variations on every endpoint, hostile bodies, oversized bodies, secrets.

The service runs in process (httpx over ASGI) with one trusted client (ES384 key pinned in a JWKS file) and a
fresh SQLite audit log. Every attack is one request; what counts: the status (refused = any 4xx, accepted =
2xx, 5xx = a failure of ours), whether a JWT attack was ever accepted, whether a secret sent in the body
appears in a response, the audit database (all files) or the log, and whether the chain still verifies.

    .venv/bin/python bench/attacks.py

Prints counts per family (tried / refused / accepted / 5xx) and exits non-zero on any 5xx, any accepted JWT
attack, any leaked secret or a broken chain.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.config import ClientConfig, ServiceConfig

ROOT = Path(__file__).resolve().parent.parent
ISS = "https://ehr.example.org/cds-client"
BASE = "http://127.0.0.1:8080"
SECRET = "SECRET-attack-4d2f"
EXAMPLE = json.loads((ROOT / "fhir_examples" / "order-sign-new-start-moderate-renal.json").read_text("utf-8"))
HOOK = "/cds-services/imatinib-order-sign"
ENDPOINTS = [("GET", "/cds-services"), ("POST", HOOK), ("POST", HOOK + "/feedback")]
ENDPOINTS += [("POST", "/cds-services/imatinib-patient-view"), ("POST", "/cds-services/imatinib-order-select")]


@dataclass
class Family:
    name: str
    statuses: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)

    def add(self, label: str, response: httpx.Response, *, must_refuse: bool) -> None:
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code < 400:
            self.accepted.append(label)
        if response.status_code >= 500:
            self.problems.append(f"{label}: {response.status_code} {response.text[:200]}")
        if must_refuse and response.status_code < 400:
            self.problems.append(f"{label}: accepted ({response.status_code})")
        if SECRET in response.text:
            self.problems.append(f"{label}: the secret is in the response")

    def line(self) -> str:
        tried = sum(self.statuses.values())
        refused = sum(n for s, n in self.statuses.items() if 400 <= s < 500)
        accepted = sum(n for s, n in self.statuses.items() if s < 400)
        errors = sum(n for s, n in self.statuses.items() if s >= 500)
        by = json.dumps(dict(sorted(self.statuses.items())))
        return f"{self.name:<28} {tried:>6} {refused:>8} {accepted:>9} {errors:>5}  {by}"


def _known(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings this version of the service has (the script also runs against older checkouts, for a before)."""
    return {k: v for k, v in settings.items() if k in ServiceConfig.__dataclass_fields__}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: Any, signature: bytes = b"x") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


class Keys:
    def __init__(self) -> None:
        self.good = ec.generate_private_key(ec.SECP384R1())
        self.other = ec.generate_private_key(ec.SECP384R1())

    def claims(self, audience: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, audience: str, key: Any = None, header: dict[str, Any] | None = None, **changes: Any) -> str:
        headers = {"kid": "k1", "typ": "JWT", **(header or {})}
        return jwt.encode(self.claims(audience, **changes), key or self.good, algorithm="ES384", headers=headers)


def jwt_variations(keys: Keys, audience: str) -> list[tuple[str, str | None]]:
    """(label, Authorization header value) that must all be refused."""
    now = int(time.time())
    pem = keys.good.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head, body = raw_token({"alg": "HS256", "typ": "JWT", "kid": "k1"}, keys.claims(audience)).split(".")[:2]
    hs256 = f"{head}.{body}.{b64(hmac.new(pem, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"
    good = keys.token(audience)
    g_head, _, g_sig = good.split(".")
    tampered = f"{g_head}.{b64(json.dumps(keys.claims(audience, sub='admin')).encode())}.{g_sig}"
    deep = {"iss": ISS, "x": json.loads("[" * 900 + "]" * 900)}
    variations: list[tuple[str, str | None]] = [
        ("no header", None),
        ("empty", ""),
        ("basic", "Basic dXNlcjpwYXNz"),
        ("bearer only", "Bearer"),
        ("bearer garbage", "Bearer not-a-jwt"),
        ("no scheme", good),
        ("alg none", "Bearer " + raw_token({"alg": "none", "kid": "k1"}, keys.claims(audience), b"")),
        ("alg none with sig", "Bearer " + raw_token({"alg": "none", "kid": "k1"}, keys.claims(audience))),
        ("hs256 key confusion", "Bearer " + hs256),
        ("signed by another key", "Bearer " + keys.token(audience, key=keys.other)),
        ("tampered payload", "Bearer " + tampered),
        ("expired", "Bearer " + keys.token(audience, exp=now - 60)),
        ("nbf future", "Bearer " + keys.token(audience, nbf=now + 600)),
        ("iat future", "Bearer " + keys.token(audience, iat=now + 600)),
        ("wrong aud", "Bearer " + keys.token(BASE + "/cds-services/other")),
        ("aud list without it", "Bearer " + keys.token(audience, aud=[BASE])),
        ("untrusted iss", "Bearer " + keys.token(audience, iss="https://evil.example")),
        ("unknown kid", "Bearer " + keys.token(audience, header={"kid": "k2"})),
        ("kid path traversal", "Bearer " + keys.token(audience, header={"kid": "../../etc/passwd"})),
        ("crit header", "Bearer " + keys.token(audience, header={"crit": ["exp"]})),
        ("typ at+jwt", "Bearer " + keys.token(audience, header={"typ": "at+jwt"})),
        ("no jti", "Bearer " + keys.token(audience, jti=None)),
        ("no exp", "Bearer " + keys.token(audience, exp=None)),
        ("exp string", "Bearer " + keys.token(audience, exp="tomorrow")),
        ("exp huge", "Bearer " + keys.token(audience, exp=10**30)),
        ("jti huge", "Bearer " + keys.token(audience, jti="j" * 5000)),
        ("tenant object", "Bearer " + keys.token(audience, tenant={"a": 1})),
        ("payload not object", "Bearer " + raw_token({"alg": "ES384", "kid": "k1"}, [1, 2, 3])),
        ("payload deep nesting", "Bearer " + raw_token({"alg": "ES384", "kid": "k1"}, deep)),
        ("payload not json", f"Bearer {g_head}.{b64(b'{not json')}.{g_sig}"),
        ("header not json", f"Bearer {b64(b'{')}.{b64(b'{}')}.{g_sig}"),
        ("oversized token", "Bearer " + "a" * 40_000 + ".b.c"),
        ("non-ascii token", "Bearer \u00e9\u00e9.\u00e9.\u00e9"),
        ("newline injection", "Bearer a.b.c\r\nX-Injected: 1"),
    ]
    return variations


# bodies that break a parse-time bound: each must be refused (a 4xx), whichever endpoint
MUST_REFUSE = ("array nesting", "object nesting", "unbalanced", "integer", "decimal", "lone", "surrogate")


def hostile_bodies() -> list[tuple[str, bytes]]:
    body = json.dumps(EXAMPLE)
    patient = '"resourceType": "Patient"'
    bodies: list[tuple[str, bytes]] = [
        ("empty", b""),
        ("not json", b"hello"),
        ("top-level array", b"[]"),
        ("top-level string", b'"x"'),
        ("top-level null", b"null"),
        ("truncated", body[: len(body) // 2].encode()),
        ("invalid utf-8", body.replace(patient, patient + ', "x": "\xe9"').encode("latin-1")),
        ("utf-8 bom", b"\xef\xbb\xbf" + body.encode()),
        ("utf-16", body.encode("utf-16")),
        ("NaN and Infinity", body.replace('"birthDate"', '"nan": NaN, "inf": -Infinity, "birthDate"').encode()),
        ("duplicate keys", body.replace(patient, patient + ', "resourceType": "Observation"').encode()),
        ("huge string", body.replace(patient, patient + ', "x": "' + "a" * 2_000_000 + '"').encode()),
        ("many keys", body.replace(patient, patient + "".join(f', "k{i}": {i}' for i in range(50_000))).encode()),
    ]
    for depth in (65, 900, 1_000, 10_000, 100_000):
        bodies.append(
            (f"array nesting {depth}", body.replace(patient, patient + ', "x": ' + "[" * depth + "]" * depth).encode())
        )
        bodies.append(
            (
                f"object nesting {depth}",
                body.replace(patient, patient + ', "x": ' + '{"a":' * depth + "1" + "}" * depth).encode(),
            )
        )
    bodies.append(("unbalanced nesting", b"[" * 100_000))
    for digits in (101, 4_300, 4_301, 5_001, 100_000):
        bodies.append((f"integer {digits} digits", body.replace(patient, patient + ', "x": ' + "9" * digits).encode()))
        bodies.append(
            (f"decimal {digits} digits", body.replace(patient, patient + ', "x": 0.' + "1" * digits).encode())
        )
    bodies.append(("exponent 1e999999", body.replace(patient, patient + ', "x": 1e999999').encode()))
    for where, escape in [("hookInstance", "\\ud800"), ("hookInstance", "\\udfff"), ("resource", "\\ud800\\u0041")]:
        if where == "hookInstance":
            raw = body.replace(EXAMPLE["hookInstance"], "h" + escape, 1)
        else:
            raw = body.replace(patient, patient + ', "x": "' + escape + '"')
        bodies.append((f"lone surrogate in {where} {escape}", raw.encode()))
    bodies.append(("surrogate key", body.replace(patient, patient + ', "\\udc00": 1').encode()))
    for label, auth in [
        ("fhirAuthorization string", f"Bearer {SECRET}"),
        ("fhirAuthorization list", [SECRET]),
        (
            "fhirAuthorization number-typed token",
            {"access_token": SECRET, "token_type": "Bearer", "expires_in": "x", "scope": "s", "subject": "c"},
        ),
        (
            "fhirAuthorization wrong token_type",
            {"access_token": SECRET, "token_type": SECRET, "expires_in": 1, "scope": "s", "subject": "c"},
        ),
        (
            "fhirAuthorization bad token chars",
            {"access_token": SECRET + " \n", "token_type": "Bearer", "expires_in": 1, "scope": "s", "subject": "c"},
        ),
    ]:
        bodies.append(
            (label, json.dumps(dict(EXAMPLE, fhirServer="https://fhir.example.org", fhirAuthorization=auth)).encode())
        )
    bodies.append(
        (
            "secret in context",
            json.dumps(dict(EXAMPLE, context=dict(EXAMPLE["context"], authorization=f"Bearer {SECRET}"))).encode(),
        )
    )
    bodies.append(("hostile hookInstance", json.dumps(dict(EXAMPLE, hookInstance="a b<c>?x=1#y/../z")).encode()))
    bodies.append(("hookInstance 10k chars", json.dumps(dict(EXAMPLE, hookInstance="h" * 10_000)).encode()))
    return bodies


async def main_async(workdir: Path) -> int:
    keys = Keys()
    jwks = workdir / "jwks.json"
    public = json.loads(ECAlgorithm.to_jwk(keys.good.public_key()))
    jwks.write_text(json.dumps({"keys": [dict(public, kid="k1", alg="ES384", use="sig")]}))
    db = workdir / "audit.sqlite3"
    config = ServiceConfig(
        database_url=f"sqlite:///{db}",
        link_secret_file=workdir / "secret",
        trusted_clients=(ClientConfig(iss=ISS, jwks_file=str(jwks)),),
        # every variation reaches the verifier; the limit has a family of its own below
        **_known({"refusal_burst": 0}),
    )
    log_text = io.StringIO()
    handler = logging.StreamHandler(log_text)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    audit = AuditStore(config.database_url)
    app = create_app(config, audit=audit)
    families: list[Family] = []

    def auth_for(path: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + keys.token(BASE + path)}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as client:

        async def call(method: str, path: str, headers: dict[str, str], content: bytes | None = None) -> httpx.Response:
            try:
                return await client.request(method, path, headers=headers, content=content)
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError) as exc:  # refused by the client
                return httpx.Response(499, text=f"not sendable: {type(exc).__name__}")

        jwt_family = Family("JWT variations x endpoints")
        body = json.dumps(EXAMPLE).encode()
        for method, path in ENDPOINTS:
            for label, value in jwt_variations(keys, BASE + path):
                headers = {"Content-Type": "application/json"} | ({"Authorization": value} if value is not None else {})
                response = await call(method, path, headers, body if method == "POST" else None)
                if response.status_code != 499:
                    jwt_family.add(f"{method} {path} {label}", response, must_refuse=True)
        families.append(jwt_family)

        # a token signed by the client's own key, with headers that point elsewhere: accepted (the signature is
        # the client's), but nothing may be fetched from there (no jku allowlist; x5u is never used)
        pointers = Family("valid JWT + jku/x5u headers")
        for method, path in ENDPOINTS[:2]:
            for extra in ({"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/cert"}):
                headers = {"Authorization": "Bearer " + keys.token(BASE + path, header=extra)}
                pointers.add(
                    f"{method} {path} {extra}",
                    await call(method, path, headers, body if method == "POST" else None),
                    must_refuse=False,
                )
        if app.state.service.authenticator.jwks_fetch_count:
            pointers.problems.append("a JWKS was fetched")
        families.append(pointers)

        replay = Family("JWT replay")
        headers = auth_for(HOOK)
        for i in range(5):
            response = await client.post(HOOK, content=body, headers=headers)
            replay.add("replay", response, must_refuse=i > 0)
        families.append(replay)

        for endpoint in (HOOK, HOOK + "/feedback"):
            family = Family("hostile bodies " + ("feedback" if endpoint.endswith("feedback") else "hook"))
            for label, raw in hostile_bodies():
                response = await client.post(
                    endpoint, content=raw, headers=auth_for(endpoint) | {"Content-Type": "application/json"}
                )
                family.add(label, response, must_refuse=label.startswith(MUST_REFUSE))
            families.append(family)

        oversized = Family("oversized bodies")
        big = b'{"hook": "order-sign", "pad": "' + b"x" * (config.max_body_bytes + 10) + b'"}'
        for label, headers, content in [
            ("declared", {}, big),
            ("declared small, sent large", {"Content-Length": "10"}, big),
        ]:
            response = await client.post(HOOK, content=content, headers=auth_for(HOOK) | headers)
            oversized.add(label, response, must_refuse=True)

        async def chunks() -> Any:
            for _ in range(60):
                yield b"[" * 100_000

        response = await client.post(HOOK, content=chunks(), headers=auth_for(HOOK))
        oversized.add("chunked, no length", response, must_refuse=True)
        families.append(oversized)

    # the rate limit: a flood of refusals from one address
    limited_app = create_app(replace(config, **_known({"refusal_burst": 20})), audit=audit)
    flood = Family("refusal flood (limit 20)")
    limited = httpx.ASGITransport(app=limited_app, client=("198.51.100.9", 5555))
    async with httpx.AsyncClient(transport=limited, base_url=BASE) as client:
        for _ in range(200):
            flood.add("flood", await client.post(HOOK, content=body), must_refuse=True)
    families.append(flood)
    for served in (app, limited_app):
        if hasattr(served.state.service, "auth_failures"):
            served.state.service.auth_failures.flush()

    report = audit.verify()
    audit.dispose()
    stored = b"".join(p.read_bytes() for p in workdir.glob("audit.sqlite3*"))
    logging.getLogger().removeHandler(handler)
    print(f"{'family':<28} {'tried':>6} {'refused':>8} {'accepted':>9} {'5xx':>5}  by status")
    for family in families:
        print(family.line())
    total = {k: sum(f.statuses.get(k, 0) for f in families) for k in {s for f in families for s in f.statuses}}
    tried = sum(total.values())
    print(
        f"{'total':<28} {tried:>6} {sum(n for s, n in total.items() if 400 <= s < 500):>8}"
        f" {sum(n for s, n in total.items() if s < 400):>9} {sum(n for s, n in total.items() if s >= 500):>5}"
    )
    problems = [p for f in families for p in f.problems]
    if SECRET.encode() in stored:
        problems.append("the secret is in the audit database")
    if SECRET in log_text.getvalue():
        problems.append("the secret is in the log")
    if not report.ok:
        problems.append(f"the chain does not verify: {report.reason}")
    print(
        f"chain: {report.entries} entries, intact={report.ok}; secret in db: {SECRET.encode() in stored}; "
        f"secret in log: {SECRET in log_text.getvalue()}"
    )
    for family in families:
        if family.name.startswith("hostile") and family.accepted:
            print(f"{family.name}, answered 200: {', '.join(family.accepted)}")
    for problem in problems:
        print("PROBLEM", problem)
    return 1 if problems else 0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(main_async(Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
