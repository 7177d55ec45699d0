"""Signed, expiring links to explanation pages: no patient data in the URL, only the hookInstance."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
    def __init__(self, secret: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._ttl = ttl_s
        self._clock = clock

    def token(self, hook_instance: str) -> str:
        expires = int(self._clock()) + self._ttl
        return f"{expires}.{self._mac(hook_instance, expires)}"

    def valid(self, hook_instance: str, token: str) -> bool:
        expires_text, _, mac = token.partition(".")
        if not expires_text.isdigit() or int(expires_text) < self._clock():
            return False
        return hmac.compare_digest(mac, self._mac(hook_instance, int(expires_text)))

    def _mac(self, hook_instance: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"{hook_instance}|{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
