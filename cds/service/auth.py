"""Client authentication: the JWT a CDS client (an EHR) sends as ``Authorization: Bearer <JWT>`` (CDS Hooks 2.0).

    authenticator = ClientAuthenticator([TrustedClient(iss, jwks_file=path)], MemoryJtiStore())
    identity = authenticator.verify(request.headers.get("Authorization"), audience=public_url_of_this_endpoint)

Every failure raises ``AuthError``; its message says why, for the log only: the HTTP layer answers a bare 401.
Checks, in order: Bearer header; header ``alg`` asymmetric and allowed, ``typ`` JWT if present, ``kid``; ``iss`` a
trusted client; ``jku`` in that client's allowlist (when the client has one); the key for ``kid`` from the pinned
JWKS file or, failing that, fetched from the allowlisted ``jku``; signature; ``aud``; ``exp``/``iat``/``nbf`` with
leeway; ``tenant``; ``jti`` claimed once (replay), last. The token itself is never logged, stored or put in a message.
``verify`` may block on a JWKS fetch (at most ``HttpJwksFetcher.timeout_s``): call it from a worker thread.
"""

from __future__ import annotations

import heapq
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jwt

from cds.errors import CdsError
from cds.service.auth_keys import (
    KEY_TYPES,
    FetchJwks,
    HttpJwksFetcher,
    JwkDict,
    KeyFetchError,
    KeysByKid,
    RemoteKeySets,
    load_jwks_file,
    select_key,
)

__all__ = [
    "REASONS",
    "AuthError",
    "ClientAuthenticator",
    "ClientIdentity",
    "HttpJwksFetcher",
    "JtiStore",
    "MemoryJtiStore",
    "TrustedClient",
]

MAX_TOKEN_CHARS = 16 * 1024
MAX_JTI_CHARS = 512
MAX_EPOCH_S = 32503680000  # 3000-01-01: far beyond any real token, and well inside datetime
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class AuthError(CdsError):
    """The request is not authenticated. The message is for the log; never send it to the client. ``reason`` is
    a short stable word for counting failures (REASONS); ``iss`` the trusted client the token claimed to come
    from, once that is known (None: no token, or an issuer that is not trusted)."""

    code = "unauthorized"

    def __init__(self, message: str, *, reason: str = "invalid", iss: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.iss = iss


REASONS = (
    "no-credentials",
    "not-bearer",
    "malformed",
    "header",
    "untrusted-issuer",
    "key",
    "key-fetch",
    "signature",
    "audience",
    "expired",
    "not-yet-valid",
    "claims",
    "tenant",
    "replay",
)


@dataclass(frozen=True)
class TrustedClient:
    iss: str  # exact issuer string
    jwks_file: Path | None = None  # a JWKS JSON file pinned out of band
    jku_allowlist: tuple[str, ...] = ()  # jku URLs from which keys may be fetched (SSRF guard)
    tenants: tuple[str, ...] = ()  # allowed `tenant` claims; empty = any/none


@dataclass(frozen=True)
class ClientIdentity:
    iss: str
    tenant: str | None
    jti: str
    sub: str | None
    expires_at: datetime  # the token's exp (UTC)


class JtiStore(Protocol):
    def claim(self, jti: str, iss: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen, False if already used (replay).

        ``expires_at`` is the last instant the token could still be accepted (its exp plus the leeway): keep the
        entry at least until then.
        """
        ...


class MemoryJtiStore:
    """A JtiStore in process memory, for tests and single-process use; forgets entries once they expire."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}
        self._expiry: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def claim(self, jti: str, iss: str, expires_at: datetime) -> bool:
        until = expires_at.timestamp()
        with self._lock:
            self._forget_expired(self._clock())
            if (iss, jti) in self._until:
                return False
            self._until[(iss, jti)] = until
            heapq.heappush(self._expiry, (until, iss, jti))
            return True

    def __len__(self) -> int:
        with self._lock:
            self._forget_expired(self._clock())
            return len(self._until)

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, iss, jti = heapq.heappop(self._expiry)
            del self._until[(iss, jti)]


class ClientAuthenticator:
    """Verifies client JWTs against a fixed set of trusted clients. Thread-safe.

    Bad configuration raises ValueError here, at start-up: an unknown or symmetric algorithm, a duplicate ``iss``,
    a client with neither ``jwks_file`` nor ``jku_allowlist``, a non-HTTPS ``jku``, an unreadable JWKS file.
    """

    def __init__(
        self,
        clients: Sequence[TrustedClient],
        jti_store: JtiStore,
        *,
        leeway_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        fetch_jwks: Callable[[str], Mapping[str, Any]] | None = None,
        jwks_refetch_min_interval_s: float = 60.0,
        algorithms: tuple[str, ...] = ("ES384", "RS384", "ES256", "RS256"),
    ) -> None:
        unsupported = [a for a in algorithms if a not in KEY_TYPES]
        if unsupported or not algorithms:
            raise ValueError(
                f"algorithms {unsupported or '()'} not allowed; use asymmetric ones of {sorted(KEY_TYPES)}"
            )
        if not 0 <= leeway_s <= 300:
            raise ValueError(f"leeway_s must be within 0..300 s, got {leeway_s}")
        self._clients = _index_clients(clients)
        self._pinned: dict[str, KeysByKid] = {
            c.iss: load_jwks_file(c.jwks_file) for c in clients if c.jwks_file is not None
        }
        self._jti_store = jti_store
        self._leeway_s = leeway_s
        self._clock = clock
        self._algorithms = frozenset(algorithms)
        fetch: FetchJwks = fetch_jwks if fetch_jwks is not None else HttpJwksFetcher()
        self._remote = RemoteKeySets(fetch, clock, min_interval_s=jwks_refetch_min_interval_s)

    @property
    def jwks_fetch_count(self) -> int:
        """JWKS fetch attempts so far, all URLs (for metrics)."""
        return self._remote.fetch_count

    def verify(self, authorization: str | None, audience: str) -> ClientIdentity:
        """The authenticated client behind an ``Authorization`` header value, for the endpoint URL ``audience``."""
        token = _bearer_token(authorization)
        try:
            unverified = jwt.PyJWS().decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed JWT: {exc}", reason="malformed") from exc
        header = unverified["header"]
        alg = self._check_header(header)
        client = self._client_for(_json_object(unverified["payload"]).get("iss"))
        try:
            return self._verified(token, header, alg, client, audience)
        except AuthError as exc:
            exc.iss = client.iss  # claimed, not proven: counted under it, never trusted for anything else
            raise

    def _verified(
        self, token: str, header: Mapping[str, Any], alg: str, client: TrustedClient, audience: str
    ) -> ClientIdentity:
        key = self._key_for(client, header, alg)
        try:
            payload = jwt.PyJWS(options={"enforce_minimum_key_length": True}).decode(token, key, algorithms=[alg])
        except jwt.PyJWTError as exc:
            raise AuthError(f"iss {client.iss!r} kid {_show(header['kid'])}: {exc}", reason="signature") from exc
        identity = self._check_claims(_json_object(payload), client, audience)
        accept_until = identity.expires_at.timestamp() + self._leeway_s
        if not self._jti_store.claim(identity.jti, identity.iss, datetime.fromtimestamp(accept_until, UTC)):
            raise AuthError(f"iss {identity.iss!r}: jti {identity.jti!r} already used (replay)", reason="replay")
        return identity

    def _check_header(self, header: Mapping[str, Any]) -> str:
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise AuthError(
                f"alg {_show(alg)} not allowed; expected one of {sorted(self._algorithms)}", reason="header"
            )
        if "typ" in header and not (isinstance(header["typ"], str) and header["typ"].upper() == "JWT"):
            raise AuthError(f"typ {_show(header['typ'])}, expected 'JWT'", reason="header")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise AuthError("header has no kid", reason="header")
        if "crit" in header:
            raise AuthError(f"unsupported critical header extensions {_show(header['crit'])}", reason="header")
        return str(alg)

    def _client_for(self, iss: object) -> TrustedClient:
        client = self._clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise AuthError(f"iss {_show(iss)} is not a trusted client", reason="untrusted-issuer")
        return client

    def _key_for(self, client: TrustedClient, header: Mapping[str, Any], alg: str) -> jwt.PyJWK:
        kid: str = header["kid"]
        jku = header.get("jku")
        if jku is not None and (not isinstance(jku, str) or (client.jku_allowlist and jku not in client.jku_allowlist)):
            raise AuthError(f"iss {client.iss!r}: jku {_show(jku)} is not in the client's allowlist", reason="key")
        candidates: tuple[JwkDict, ...] = self._pinned.get(client.iss, {}).get(kid, ())
        if not candidates and isinstance(jku, str) and jku in client.jku_allowlist:
            try:
                candidates = self._remote.candidates(jku, kid)
            except KeyFetchError as exc:
                raise AuthError(f"iss {client.iss!r}: {exc}", reason="key-fetch") from exc
        if not candidates:
            where = "its pinned JWKS" + (f" or {jku}" if isinstance(jku, str) and jku in client.jku_allowlist else "")
            raise AuthError(f"iss {client.iss!r}: unknown kid {_show(kid)} (not in {where})", reason="key")
        key = select_key(candidates, alg)
        if key is None:
            raise AuthError(f"iss {client.iss!r}: no usable key with kid {_show(kid)} for alg {alg}", reason="key")
        return key

    def _check_claims(self, claims: Mapping[str, Any], client: TrustedClient, audience: str) -> ClientIdentity:
        who = f"iss {client.iss!r}"
        if claims.get("iss") != client.iss:
            raise AuthError(f"{who}: signed iss is {_show(claims.get('iss'))}", reason="claims")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in audiences or not all(isinstance(a, str) for a in audiences):
            raise AuthError(f"{who}: aud {_show(aud)} does not contain {audience!r}", reason="audience")
        now, leeway = self._clock(), self._leeway_s
        exp, iat, nbf = _epoch(claims, "exp", who), _epoch(claims, "iat", who), claims.get("nbf")
        if exp <= now - leeway:
            raise AuthError(f"{who}: expired (exp {exp}, now {now:.0f}, leeway {leeway} s)", reason="expired")
        if iat > now + leeway:
            raise AuthError(
                f"{who}: iat {iat} is in the future (now {now:.0f}, leeway {leeway} s)", reason="not-yet-valid"
            )
        if nbf is not None and _epoch(claims, "nbf", who) > now + leeway:
            raise AuthError(
                f"{who}: not valid before nbf {nbf} (now {now:.0f}, leeway {leeway} s)", reason="not-yet-valid"
            )
        tenant = _optional_str(claims, "tenant", who)
        if client.tenants and tenant not in client.tenants:
            raise AuthError(f"{who}: tenant {_show(tenant)} is not allowed for this client", reason="tenant")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise AuthError(
                f"{who}: jti {_show(jti)} missing or not a string of 1..{MAX_JTI_CHARS} characters", reason="claims"
            )
        return ClientIdentity(
            client.iss, tenant, jti, _optional_str(claims, "sub", who), datetime.fromtimestamp(exp, UTC)
        )


def _index_clients(clients: Sequence[TrustedClient]) -> dict[str, TrustedClient]:
    index: dict[str, TrustedClient] = {}
    for client in clients:
        if not client.iss or client.iss in index:
            raise ValueError(f"trusted client iss {client.iss!r} is empty or listed twice")
        if client.jwks_file is None and not client.jku_allowlist:
            raise ValueError(f"trusted client {client.iss!r} needs a jwks_file or a jku_allowlist")
        insecure = [url for url in client.jku_allowlist if not url.startswith("https://")]
        if insecure:
            raise ValueError(f"trusted client {client.iss!r}: jku URLs must be https://, got {insecure}")
        index[client.iss] = client
    return index


def _bearer_token(authorization: str | None) -> str:
    if authorization is None:
        raise AuthError("no Authorization header", reason="no-credentials")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError(f"Authorization scheme {_show(scheme[:20])} is not Bearer", reason="not-bearer")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise AuthError(f"Bearer credential is not a compact JWS ({len(token)} characters)", reason="malformed")
    return token


def _json_object(raw: bytes) -> Mapping[str, Any]:
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(raw, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        raise AuthError(f"JWT payload is not JSON: {exc}", reason="malformed") from exc
    if not isinstance(value, dict):
        raise AuthError("JWT payload is not a JSON object", reason="malformed")
    return value


def _epoch(claims: Mapping[str, Any], name: str, who: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < MAX_EPOCH_S:
        raise AuthError(f"{who}: claim {name} is {_show(value)}, expected a number of epoch seconds", reason="claims")
    return float(value)


def _optional_str(claims: Mapping[str, Any], name: str, who: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise AuthError(f"{who}: claim {name} is {_show(value)}, expected a string", reason="claims")
    return value


def _show(value: object, limit: int = 80) -> str:
    """An attacker-controlled value, safe for a log line: repr (no raw newlines), truncated."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
