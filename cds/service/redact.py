"""Credentials never leave the request: not into diagnostics, the audit log or the process log.

A client may send a FHIR access token (``fhirAuthorization.access_token``), or by mistake a whole header value
(``"fhirAuthorization": "Bearer ..."``). Whatever its shape, a value under a secret-bearing key is removed
before anything is stored, and an error about such a field names the field and the rule it breaks, never the
value.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
# keys whose value is a credential wherever they appear (compared in lower case)
SECRET_KEYS = frozenset({"authorization", "access_token", "refresh_token", "id_token", "client_secret"})
# keys whose value holds credentials: an object keeps its harmless fields, anything else is replaced
SECRET_HOLDERS = frozenset({"fhirauthorization"})
# a secret-bearing key in JSON text, lower case ("key": never occurs inside a string: there quotes are escaped)
_SECRET_KEY_TEXT = tuple(f'"{k}":' for k in sorted(SECRET_KEYS | SECRET_HOLDERS))
# what a credential looks like in free text: a bearer value, or a compact JWS/JWT
_CREDENTIAL_TEXT = re.compile(
    r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+|\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"
)


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and (key.lower() in SECRET_KEYS or key.lower() in SECRET_HOLDERS)


def touches_secret(path: Iterable[object]) -> bool:
    """Whether a JSON path goes through a secret-bearing key."""
    return any(is_secret_key(step) for step in path)


def holds_secret(value: Any) -> bool:
    """Whether a decoded JSON value has a secret-bearing key anywhere inside (depth is bounded by the parser)."""
    if isinstance(value, dict):
        return any(is_secret_key(k) or holds_secret(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_secret(v) for v in value)
    return False


def redacted(value: Any) -> Any:
    """A copy without credentials: secret keys removed, a non-object ``fhirAuthorization`` replaced. A value
    holding none is returned as it is (no copy). Whether it holds one is first looked up in its JSON text (C
    speed, cheaper than walking a usual request in Python); only a hit is walked."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        text = None
    if text is not None:
        lowered = text.lower()
        if not any(key in lowered for key in _SECRET_KEY_TEXT):
            return value
    return _redact(value) if holds_secret(value) else value


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            lower = key.lower() if isinstance(key, str) else key
            if lower in SECRET_KEYS:
                continue  # removed, as the request digest always did for access_token
            if lower in SECRET_HOLDERS:
                out[key] = _redact(item) if isinstance(item, dict) else REDACTED
            else:
                out[key] = _redact(item)
        return out
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def scrub_text(text: str) -> str:
    """Free text with anything that looks like a credential replaced (for log lines and messages)."""
    return _CREDENTIAL_TEXT.sub(REDACTED, text)


class ScrubCredentials(logging.Filter):
    """A log filter that removes credential-looking text from a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if scrub_text(text) != text:
                record.exc_text = f"{type(record.exc_info[1]).__name__}: {REDACTED} (exception text held a credential)"
                record.exc_info = None
        return True


def install_log_scrubbing(names: Iterable[str] = ("cds", "cds.service", "cds.access", "uvicorn.error")) -> None:
    """Attach the filter to the service's loggers (a filter on a logger sees only records logged there)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubCredentials) for f in logger.filters):
            logger.addFilter(ScrubCredentials())
