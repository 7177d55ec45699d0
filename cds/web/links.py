"""Signed, expiring links to explanation pages: no patient data in the URL, only the hookInstance
(and the issuer of the client the link was made for)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote


def load_secret(path: Path) -> bytes:
    """The signing key shared by every worker; created once with owner-only permissions."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    return path.read_bytes().strip()


def explain_path(hook_instance: str) -> str:
    """The explanation page's path; the hookInstance is client text, percent-encoded whole (no '/', '?', '#')."""
    return f"/explain/{quote(hook_instance, safe='')}"


class LinkSigner:
    """A token is ``expires.mac`` for a loopback service (no client identity) and ``expires.issuer.mac`` for a
    trusted client's call: the MAC binds the client's issuer with the hookInstance, so a link opens only the
    decision of the client it was issued to, even when another client reuses the same hookInstance."""

    def __init__(self, secret: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._ttl = ttl_s
        self._clock = clock

    def token(self, hook_instance: str, client: str = "") -> str:
        expires = int(self._clock()) + self._ttl
        mac = self._mac(hook_instance, expires, client)
        return f"{expires}.{_b64(client.encode())}.{mac}" if client else f"{expires}.{mac}"

    def valid(self, hook_instance: str, token: str) -> bool:
        return self.client_of(hook_instance, token) is not None

    def client_of(self, hook_instance: str, token: str) -> str | None:
        """The client (issuer; "" when not authenticated) a valid, unexpired token was issued to, else None."""
        parts = token.split(".")
        if len(parts) == 2:
            expires_text, client, mac = parts[0], "", parts[1]
        elif len(parts) == 3:
            expires_text, mac = parts[0], parts[2]
            try:
                client = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return None
            if not client:
                return None
        else:
            return None
        if not expires_text.isdigit() or int(expires_text) < self._clock():
            return None
        return client if hmac.compare_digest(mac, self._mac(hook_instance, int(expires_text), client)) else None

    def _mac(self, hook_instance: str, expires: int, client: str = "") -> str:
        # unambiguous: the issuer and the hookInstance may each contain any character
        message = f"{hook_instance}|{expires}" if not client else json.dumps([client, hook_instance, expires])
        return _b64(hmac.new(self._secret, message.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
