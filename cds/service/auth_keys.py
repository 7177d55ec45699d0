"""Public keys of CDS clients: pinned JWKS files, JWKS fetched from allowlisted ``jku`` URLs, key choice per ``alg``.

Only asymmetric algorithms exist here: a JWK with ``kty: oct`` (an HMAC secret) is never usable, nor is one
that carries private key material. Everything raised here is internal; ``cds.service.auth`` turns it into
``AuthError`` (or, for pinned files at start-up, ``ValueError``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

logger = logging.getLogger(__name__)

# alg -> (kty, crv); crv None for RSA.
KEY_TYPES: Mapping[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

JwkDict = Mapping[str, Any]
KeysByKid = Mapping[str, tuple[JwkDict, ...]]
FetchJwks = Callable[[str], Mapping[str, Any]]


class KeyFetchError(Exception):
    """A JWKS could not be fetched or understood (internal; becomes AuthError)."""


def parse_jwks(document: object) -> tuple[dict[str, tuple[JwkDict, ...]], list[str]]:
    """Usable verification keys of a JWK Set, grouped by ``kid``, and a list of keys that were skipped and why."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set: expected a JSON object with a 'keys' array")
    keys: dict[str, tuple[JwkDict, ...]] = {}
    skipped: list[str] = []
    for index, jwk in enumerate(document["keys"]):
        problem = _unusable(jwk)
        if problem:
            skipped.append(f"keys[{index}]: {problem}")
            continue
        keys[jwk["kid"]] = (*keys.get(jwk["kid"], ()), jwk)
    return keys, skipped


def _unusable(jwk: object) -> str | None:
    if not isinstance(jwk, Mapping):
        return "not a JSON object"
    if not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return "no 'kid'"
    if jwk.get("kty") not in ("EC", "RSA"):
        return f"kty {jwk.get('kty')!r} is not EC or RSA"
    if _PRIVATE_MEMBERS & set(jwk):
        return f"kid {jwk['kid']!r} carries private key material"
    if jwk.get("use", "sig") != "sig":
        return f"kid {jwk['kid']!r} has use {jwk.get('use')!r}, not 'sig'"
    return None


def load_jwks_file(path: Path) -> dict[str, tuple[JwkDict, ...]]:
    """A pinned JWKS file; ValueError (naming the file) unless it parses and every key in it is usable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        keys, skipped = parse_jwks(document)
    except (OSError, ValueError) as exc:
        raise ValueError(f"JWKS file {path}: {exc}") from exc
    if skipped:
        raise ValueError(f"JWKS file {path}: unusable key(s): {'; '.join(skipped)}")
    if not keys:
        raise ValueError(f"JWKS file {path}: no keys")
    return keys


def select_key(candidates: tuple[JwkDict, ...], alg: str) -> jwt.PyJWK | None:
    """The first candidate whose key type (and curve, and own ``alg`` if it names one) fits ``alg``."""
    kty, crv = KEY_TYPES[alg]
    for jwk in candidates:
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv) or jwk.get("alg", alg) != alg:
            continue
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
        except jwt.PyJWTError:
            logger.warning("JWK kid=%r could not be read as an %s key", jwk.get("kid"), alg)
            continue
        if isinstance(key.key, RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
            logger.warning("JWK kid=%r: RSA key of %d bits refused", jwk.get("kid"), key.key.key_size)
            continue
        return key
    return None


class HttpJwksFetcher:
    """The default ``fetch_jwks``: one HTTPS GET, no redirects, a short timeout and a size cap."""

    def __init__(
        self, *, timeout_s: float = 2.0, max_bytes: int = 64 * 1024, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._transport = transport

    def __call__(self, url: str) -> Mapping[str, Any]:
        if not url.startswith("https://"):
            raise ValueError(f"refusing to fetch a JWKS over a non-HTTPS URL: {url}")
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False, transport=self._transport) as client:
            with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise ValueError(f"GET {url}: HTTP {response.status_code}, expected 200")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ValueError(f"GET {url}: body larger than {self.max_bytes} bytes")
        document = json.loads(bytes(body))
        if not isinstance(document, Mapping):
            raise ValueError(f"GET {url}: expected a JSON object")
        return document


@dataclass
class _Entry:
    keys: KeysByKid
    fetched_at: float


class RemoteKeySets:
    """JWK Sets fetched from (already allowlisted) URLs, cached per URL.

    A URL is fetched on first use, again when a token names a ``kid`` the cached set lacks (key rotation) and when
    the cached set is older than ``max_age_s``; never more often than once per ``min_interval_s`` per URL, failed
    attempts included. A failed refresh of a merely old set keeps the old keys for up to ``stale_limit_s``.
    """

    def __init__(
        self,
        fetch: FetchJwks,
        clock: Callable[[], float],
        *,
        min_interval_s: float = 60.0,
        max_age_s: float = 3600.0,
        stale_limit_s: float = 24 * 3600.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self.min_interval_s = min_interval_s
        self.max_age_s = max_age_s
        self.stale_limit_s = stale_limit_s
        self._entries: dict[str, _Entry] = {}
        self._attempts: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._count = 0

    def candidates(self, url: str, kid: str) -> tuple[JwkDict, ...]:
        """The JWKs named ``kid`` at ``url`` (empty if none); KeyFetchError when no usable key set is available."""
        with self._lock(url):
            now = self._clock()
            entry = self._entries.get(url)
            old = entry is not None and now - entry.fetched_at >= self.max_age_s
            if (entry is None or old or kid not in entry.keys) and self._may_fetch(url, now):
                try:
                    entry = self._refresh(url, now)
                except KeyFetchError:
                    if entry is None or kid not in entry.keys:
                        raise
                    logger.warning("JWKS %s: refresh failed, keeping keys fetched at %s", url, entry.fetched_at)
            if entry is None:
                raise KeyFetchError(f"JWKS {url}: no keys (last fetch failed less than {self.min_interval_s} s ago)")
            if now - entry.fetched_at >= self.stale_limit_s:
                raise KeyFetchError(f"JWKS {url}: cached keys are older than {self.stale_limit_s} s")
            return entry.keys.get(kid, ())

    @property
    def fetch_count(self) -> int:
        """Fetch attempts so far (successful or not); for tests and metrics."""
        return self._count

    def _lock(self, url: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(url, threading.Lock())

    def _may_fetch(self, url: str, now: float) -> bool:
        last = self._attempts.get(url)
        return last is None or now - last >= self.min_interval_s

    def _refresh(self, url: str, now: float) -> _Entry:
        self._attempts[url] = now
        self._count += 1
        try:
            keys, skipped = parse_jwks(self._fetch(url))
        except Exception as exc:  # any failure of the fetch function is a failed fetch, never a crash
            raise KeyFetchError(f"JWKS {url}: fetch failed: {type(exc).__name__}: {exc}") from exc
        for problem in skipped:
            logger.warning("JWKS %s: skipped %s", url, problem)
        entry = _Entry(keys, now)
        self._entries[url] = entry
        logger.info("JWKS %s: fetched, kids %s", url, sorted(keys))
        return entry
