"""Client JWT authentication (cds.service.auth): the acceptance matrix of CDS Hooks 2.0 §Trusting CDS Clients.

Keys are generated here with cryptography; the clock is frozen (NOW); no test touches the network: jku fetches go
through a counting fake ``fetch_jwks`` or an httpx.MockTransport.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds.service.auth import (
    REASONS,
    AuthError,
    ClientAuthenticator,
    ClientIdentity,
    HttpJwksFetcher,
    MemoryJtiStore,
    TrustedClient,
)

DATA = Path(__file__).parent / "data"
NOW = 1_800_000_000.0
ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/imatinib-order-sign"
JKU = "https://ehr.example.org/.well-known/jwks.json"

EC384 = ec.generate_private_key(ec.SECP384R1())
EC256 = ec.generate_private_key(ec.SECP256R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE: dict[str, Any] = {"ES384": EC384, "ES256": EC256, "RS384": RSA, "RS256": RSA}
KIDS = {"ES384": "ec384", "ES256": "ec256", "RS384": "rsa", "RS256": "rsa"}


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingFetch:
    """A fake fetch_jwks: serves ``self.jwks`` (mutable, for rotation) and counts calls."""

    def __init__(self, jwks: Mapping[str, Any] | Exception) -> None:
        self.jwks = jwks
        self.urls: list[str] = []

    def __call__(self, url: str) -> Mapping[str, Any]:
        self.urls.append(url)
        if isinstance(self.jwks, Exception):
            raise self.jwks
        return self.jwks


def jwk_of(key: Any, kid: str, *, private: bool = False) -> dict[str, Any]:
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    material = key if private else key.public_key()
    return {**jwt.get_algorithm_by_name(alg).to_jwk(material, as_dict=True), "kid": kid, "use": "sig"}


def jwks(*pairs: tuple[Any, str]) -> dict[str, Any]:
    return {"keys": [jwk_of(key, kid) for key, kid in pairs]}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS, "aud": AUD, "iat": NOW, "exp": NOW + 300, "jti": "jti-1"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(
    alg: str = "ES384", *, kid: str | None = None, header: Mapping[str, Any] | None = None, **changes: Any
) -> str:
    headers = {"kid": kid or KIDS[alg], **(header or {})}
    return jwt.encode(claims(**changes), PRIVATE[alg], algorithm=alg, headers=headers)


def bearer(value: str) -> str:
    return f"Bearer {value}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


@pytest.fixture
def pinned(tmp_path: Path) -> Path:
    path = tmp_path / "ehr-jwks.json"
    path.write_text(json.dumps(jwks((EC384, "ec384"), (EC256, "ec256"), (RSA, "rsa"))), encoding="utf-8")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryJtiStore:
    return MemoryJtiStore(clock=clock)


@pytest.fixture
def make_auth(pinned: Path, store: MemoryJtiStore, clock: Clock) -> Callable[..., ClientAuthenticator]:
    def make(*clients: TrustedClient, fetch: CountingFetch | None = None, **kwargs: Any) -> ClientAuthenticator:
        trusted = clients or (TrustedClient(ISS, jwks_file=pinned),)
        fetch_jwks = fetch if fetch is not None else CountingFetch(AssertionError("no fetch expected"))
        return ClientAuthenticator(trusted, store, clock=clock, fetch_jwks=fetch_jwks, **kwargs)

    return make


@pytest.fixture
def auth(make_auth: Callable[..., ClientAuthenticator]) -> ClientAuthenticator:
    return make_auth()


# --- accepted ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384", "ES256", "RS256"])
def test_valid_token_is_accepted(auth: ClientAuthenticator, alg: str) -> None:
    identity = auth.verify(bearer(token(alg, tenant="t1", sub="client-7")), AUD)
    assert identity == ClientIdentity(ISS, "t1", "jti-1", "client-7", datetime.fromtimestamp(NOW + 300, UTC))


def test_sandbox_shape_is_accepted(auth: ClientAuthenticator) -> None:
    """The sandbox rounds iat up (0.5 s ahead), sends jku, no tenant and no sub; aud may also be a list."""
    jwt_ = token(iat=NOW + 0.5, aud=["https://other.example.org", AUD], header={"jku": "https://sandbox/jwks.json"})
    identity = auth.verify(f"bearer  {jwt_} ", AUD)
    assert identity.tenant is None and identity.sub is None


def test_spec_example_token_verifies_with_frozen_clock(tmp_path: Path, store: MemoryJtiStore) -> None:
    example = json.loads((DATA / "cds-hooks-jwt-example.json").read_text(encoding="utf-8"))
    assert "Trusting CDS Clients" in example["source"]
    (tmp_path / "jwks.json").write_text(json.dumps(example["jwks"]), encoding="utf-8")
    client = TrustedClient("https://fhir-ehr.example.com/", jwks_file=tmp_path / "jwks.json")
    payload = example["payload"]
    frozen = ClientAuthenticator([client], store, clock=lambda: (payload["iat"] + payload["exp"]) / 2)
    identity = frozen.verify(bearer(example["token"]), "https://cds.example.org/cds-services/some-service")
    assert identity.jti == payload["jti"] and identity.tenant == payload["tenant"] and identity.sub == "client_id"
    assert identity.expires_at == datetime(2015, 1, 29, 22, 1, tzinfo=UTC)

    real = ClientAuthenticator([client], MemoryJtiStore())
    with pytest.raises(AuthError, match="expired"):
        real.verify(bearer(example["token"]), "https://cds.example.org/cds-services/some-service")


# --- the rejection matrix ------------------------------------------------------------------------------------------


def hs256_with_public_key() -> str:
    """The classic key-confusion attack: HMAC keyed with the server's own public key PEM."""
    pem = EC384.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head, body = unsigned({"alg": "HS256", "typ": "JWT", "kid": "ec384"}, claims()).split(".")[:2]
    return f"{head}.{body}.{b64(hmac.new(pem, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def tampered() -> str:
    head, _, signature = token().split(".")
    return f"{head}.{b64(json.dumps(claims(tenant='someone-else')).encode())}.{signature}"


REJECTED = [
    pytest.param(None, "no Authorization", id="no-token"),
    pytest.param("", "not Bearer", id="empty-header"),
    pytest.param("Basic dXNlcjpwYXNz", "not Bearer", id="basic"),
    pytest.param(token(), "not Bearer", id="no-scheme"),
    pytest.param("Bearer", "not a compact JWS", id="bearer-without-token"),
    pytest.param("Bearer not.a-jwt", "not a compact JWS", id="two-segments"),
    pytest.param(bearer(unsigned({"alg": "none", "kid": "ec384"}, claims())), "not a compact JWS", id="alg-none"),
    pytest.param(bearer(unsigned({"alg": "none", "kid": "ec384"}, claims(), b"x")), "alg 'none'", id="alg-none-sig"),
    pytest.param(bearer(hs256_with_public_key()), "alg 'HS256' not allowed", id="hs256-public-key-as-secret"),
    pytest.param(bearer(token(exp=NOW - 6)), "expired", id="expired"),
    pytest.param(bearer(token(aud="https://cds.example.org/cds-services")), "aud", id="wrong-aud"),
    pytest.param(bearer(token(aud=[AUD + "/"])), "aud", id="aud-list-without-it"),
    pytest.param(bearer(token(iss="https://evil.example.org")), "not a trusted client", id="unknown-iss"),
    pytest.param(bearer(token(kid="rotated-away")), "unknown kid", id="unknown-kid"),
    pytest.param(bearer(tampered()), "Signature verification failed", id="tampered-payload"),
    pytest.param(bearer(token(nbf=NOW + 60)), "nbf", id="nbf-in-future"),
    pytest.param(bearer(token(iat=NOW + 6)), "iat", id="iat-in-future"),
    pytest.param(bearer(token(jti=None)), "jti", id="no-jti"),
    pytest.param(bearer(token(exp=None)), "exp", id="no-exp"),
    pytest.param(bearer(token(iat=None)), "iat", id="no-iat"),
    pytest.param(bearer(token(exp=float("nan"))), "not JSON", id="exp-nan"),
    pytest.param(bearer(token(exp="tomorrow")), "exp", id="exp-string"),
    pytest.param(bearer(token(exp=10**15)), "exp", id="exp-absurd"),
    pytest.param(bearer(token(tenant=7)), "tenant", id="tenant-not-string"),
    pytest.param(bearer(token(header={"typ": "at+jwt"})), "typ", id="wrong-typ"),
    pytest.param(bearer(token(header={"crit": ["exp"]})), "crit", id="crit-header"),
    pytest.param(bearer(token("ES384", kid="rsa")), "no usable key", id="ec-alg-rsa-key"),
    pytest.param(bearer(token("ES256", kid="ec384")), "no usable key", id="es256-on-p384-key"),
    pytest.param(bearer(token("RS384", kid="ec384")), "no usable key", id="rsa-alg-ec-key"),
    pytest.param(bearer(token("ES384", header={"kid": ""})), "no kid", id="empty-kid"),
    pytest.param("Bearer " + "a" * 20_000 + ".b.c", "not a compact JWS", id="oversized"),
]


@pytest.mark.parametrize(("authorization", "reason"), REJECTED)
def test_rejected(auth: ClientAuthenticator, store: MemoryJtiStore, authorization: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason) as caught:
        auth.verify(authorization, AUD)
    assert caught.value.code == "unauthorized"
    assert caught.value.reason in REASONS  # a stable word to count failures by (cds.service.auth_failures)
    credential = (authorization or "").removeprefix("Bearer ")
    assert len(credential) < 20 or credential not in str(caught.value)  # never the token in the message
    assert len(store) == 0  # nothing claimed before every other check passed


def test_no_kid_header(auth: ClientAuthenticator) -> None:
    no_kid = jwt.encode(claims(), EC384, algorithm="ES384")
    with pytest.raises(AuthError, match="no kid"):
        auth.verify(bearer(no_kid), AUD)


def test_replayed_jti(auth: ClientAuthenticator) -> None:
    auth.verify(bearer(token(jti="once")), AUD)
    with pytest.raises(AuthError, match="replay"):
        auth.verify(bearer(token("RS384", jti="once")), AUD)
    auth.verify(bearer(token(jti="twice")), AUD)


def test_tenants(make_auth: Callable[..., ClientAuthenticator], pinned: Path) -> None:
    auth = make_auth(TrustedClient(ISS, jwks_file=pinned, tenants=("org-1", "org-2")))
    assert auth.verify(bearer(token(tenant="org-2", jti="a")), AUD).tenant == "org-2"
    with pytest.raises(AuthError, match="tenant 'org-3' is not allowed"):
        auth.verify(bearer(token(tenant="org-3", jti="b")), AUD)
    with pytest.raises(AuthError, match="tenant None is not allowed"):
        auth.verify(bearer(token(jti="c")), AUD)


def test_leeway_on_exp(auth: ClientAuthenticator) -> None:
    auth.verify(bearer(token(exp=NOW - 4, jti="within-leeway")), AUD)
    with pytest.raises(AuthError, match="expired"):
        auth.verify(bearer(token(exp=NOW - 5, jti="at-leeway")), AUD)


# --- jku: allowlist, fetch, cache, rotation -----------------------------------------------------------------------


def test_jku_not_in_allowlist_is_never_fetched(make_auth: Callable[..., ClientAuthenticator]) -> None:
    fetch = CountingFetch(jwks((EC384, "ec384")))
    auth = make_auth(TrustedClient(ISS, jku_allowlist=(JKU,)), fetch=fetch)
    for jku in ["https://attacker.example/jwks.json", "http://169.254.169.254/latest", JKU + "?x", 42]:
        with pytest.raises(AuthError, match="not in the client's allowlist"):
            auth.verify(bearer(token(header={"jku": jku})), AUD)
    with pytest.raises(AuthError, match="unknown kid"):
        auth.verify(bearer(token()), AUD)  # no jku and nothing pinned: nothing to fetch either
    assert fetch.urls == []


def test_jku_rotation_refetches_once_per_interval(make_auth: Callable[..., ClientAuthenticator], clock: Clock) -> None:
    fetch = CountingFetch(jwks((EC384, "ec384")))
    auth = make_auth(TrustedClient(ISS, jku_allowlist=(JKU,)), fetch=fetch, jwks_refetch_min_interval_s=60)
    with_jku = {"jku": JKU}
    auth.verify(bearer(token(header=with_jku, jti="1")), AUD)
    auth.verify(bearer(token(header=with_jku, jti="2")), AUD)
    assert fetch.urls == [JKU]  # cached

    clock.now += 120  # the client rotates to a new key
    fetch.jwks = jwks((EC384, "ec384"), (RSA, "rsa-2026"))
    auth.verify(bearer(token("RS384", kid="rsa-2026", header=with_jku, iat=clock.now, exp=clock.now + 300)), AUD)
    assert len(fetch.urls) == 2  # exactly one refetch

    clock.now += 10
    with pytest.raises(AuthError, match="unknown kid"):
        auth.verify(bearer(token(kid="never-published", header=with_jku, iat=clock.now, exp=clock.now + 300)), AUD)
    assert len(fetch.urls) == 2  # within the interval: no refetch
    assert auth.jwks_fetch_count == 2


def test_jku_fetch_failure(make_auth: Callable[..., ClientAuthenticator], clock: Clock) -> None:
    fetch = CountingFetch(httpx.ConnectError("connection refused"))
    auth = make_auth(TrustedClient(ISS, jku_allowlist=(JKU,)), fetch=fetch)
    with pytest.raises(AuthError, match="fetch failed: ConnectError"):
        auth.verify(bearer(token(header={"jku": JKU})), AUD)
    with pytest.raises(AuthError, match="no keys"):  # failed attempts are rate-limited too
        auth.verify(bearer(token(header={"jku": JKU}, jti="2")), AUD)
    fetch.jwks = {"keys": "not a list"}
    clock.now += 60
    with pytest.raises(AuthError, match="not a JWK Set"):
        auth.verify(bearer(token(header={"jku": JKU}, jti="3", iat=clock.now, exp=clock.now + 60)), AUD)
    assert len(fetch.urls) == 2


def test_old_jwks_is_refreshed_and_kept_if_refresh_fails(
    make_auth: Callable[..., ClientAuthenticator], clock: Clock
) -> None:
    hmac_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}  # never usable, skipped with a warning in the log
    fetch = CountingFetch({"keys": [jwk_of(EC384, "ec384"), hmac_key]})
    auth = make_auth(TrustedClient(ISS, jku_allowlist=(JKU,)), fetch=fetch)
    auth.verify(bearer(token(header={"jku": JKU}, jti="1")), AUD)
    clock.now += 3601
    fetch.jwks = httpx.ReadTimeout("slow")
    auth.verify(bearer(token(header={"jku": JKU}, jti="2", iat=clock.now, exp=clock.now + 60)), AUD)
    assert len(fetch.urls) == 2


def test_pinned_key_is_used_before_any_fetch(make_auth: Callable[..., ClientAuthenticator], pinned: Path) -> None:
    fetch = CountingFetch(jwks())
    auth = make_auth(TrustedClient(ISS, jwks_file=pinned, jku_allowlist=(JKU,)), fetch=fetch)
    auth.verify(bearer(token(header={"jku": JKU})), AUD)
    assert fetch.urls == []


def test_http_fetcher_over_mock_transport() -> None:
    served = jwks((EC384, "ec384"))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks.json":
            return httpx.Response(200, json=served)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"Location": "http://169.254.169.254/"})
        return httpx.Response(200, content=b"{" + b" " * 70_000 + b"}")

    fetch = HttpJwksFetcher(transport=httpx.MockTransport(handler))
    assert fetch("https://ehr.example.org/jwks.json") == served
    with pytest.raises(ValueError, match="HTTP 302"):
        fetch("https://ehr.example.org/moved")
    with pytest.raises(ValueError, match="larger than"):
        fetch("https://ehr.example.org/huge")
    with pytest.raises(ValueError, match="non-HTTPS"):
        fetch("http://ehr.example.org/jwks.json")


# --- jti store and configuration -----------------------------------------------------------------------------------


def test_memory_jti_store_forgets_expired_entries() -> None:
    clock = Clock()
    store = MemoryJtiStore(clock=clock)
    soon, later = datetime.fromtimestamp(NOW + 10, UTC), datetime.fromtimestamp(NOW + 100, UTC)
    assert store.claim("a", ISS, soon) and store.claim("b", ISS, later) and store.claim("a", "other-iss", later)
    assert not store.claim("a", ISS, soon)
    assert len(store) == 3
    clock.now = NOW + 10
    assert len(store) == 2
    assert store.claim("a", ISS, later)  # forgotten, so claimable again (the token itself would be expired)
    clock.now = NOW + 100
    assert len(store) == 0


def test_jti_is_kept_through_the_leeway(auth: ClientAuthenticator, store: MemoryJtiStore, clock: Clock) -> None:
    auth.verify(bearer(token(exp=NOW + 10, jti="edge")), AUD)
    clock.now = NOW + 14  # exp passed, still inside the 5 s leeway: the replay must still be caught
    with pytest.raises(AuthError, match="replay"):
        auth.verify(bearer(token(exp=NOW + 10, jti="edge")), AUD)


def leaky_file(tmp_path: Path) -> Path:
    (tmp_path / "leak.json").write_text(json.dumps({"keys": [jwk_of(EC384, "k", private=True)]}), encoding="utf-8")
    return tmp_path / "leak.json"


Clients = Callable[[Path, Path], list[TrustedClient]]  # (pinned, tmp_path) -> clients
GOOD: Clients = lambda pinned, _: [TrustedClient(ISS, jwks_file=pinned)]  # noqa: E731


@pytest.mark.parametrize(
    ("kwargs", "clients", "message"),
    [
        pytest.param({"algorithms": ("HS256",)}, GOOD, "asymmetric", id="hs256"),
        pytest.param({"algorithms": ("none", "ES384")}, GOOD, "asymmetric", id="none"),
        pytest.param({"algorithms": ()}, GOOD, "asymmetric", id="no-algorithms"),
        pytest.param({"leeway_s": -1}, GOOD, "leeway", id="negative-leeway"),
        pytest.param({}, lambda p, t: [TrustedClient(ISS)], "jwks_file or a jku_allowlist", id="no-keys"),
        pytest.param({}, lambda p, t: [TrustedClient(ISS, jku_allowlist=("http://ehr/k",))], "https", id="http-jku"),
        pytest.param({}, lambda p, t: GOOD(p, t) * 2, "listed twice", id="duplicate-iss"),
        pytest.param({}, lambda p, t: [TrustedClient(ISS, jwks_file=t / "absent.json")], "JWKS file", id="missing"),
        pytest.param({}, lambda p, t: [TrustedClient(ISS, jwks_file=leaky_file(t))], "private key", id="private-key"),
    ],
)
def test_bad_configuration(
    pinned: Path, tmp_path: Path, kwargs: dict[str, Any], clients: Clients, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClientAuthenticator(clients(pinned, tmp_path), MemoryJtiStore(), **kwargs)


def test_a_client_cannot_use_another_clients_key(tmp_path: Path, pinned: Path) -> None:
    other_keys = tmp_path / "other.json"
    other_keys.write_text(json.dumps(jwks((EC256, "other-key"))), encoding="utf-8")
    clients = [TrustedClient(ISS, jwks_file=pinned), TrustedClient("https://other.example", jwks_file=other_keys)]
    auth = ClientAuthenticator(clients, MemoryJtiStore(), clock=Clock())
    auth.verify(bearer(token("ES256", kid="other-key", iss="https://other.example")), AUD)
    with pytest.raises(AuthError, match="unknown kid 'other-key'"):
        auth.verify(bearer(token("ES256", kid="other-key", jti="2")), AUD)
