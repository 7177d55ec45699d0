"""What the audit log keeps for each call: enough to show, for any card ever shown, exactly why."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from cds.audit.chain import canonical_json
from cds.pipeline import Outcome
from cds.service.redact import redacted

log = logging.getLogger("cds.service")


def decision_payload(
    *,
    service: str,
    hook: str,
    received: datetime,
    client: dict[str, Any] | None,
    request: dict[str, Any] | None,
    status: str,
    http_status: int,
    latency_ms: float,
    outcome: Outcome | None = None,
    completed: dict[str, Any] | None = None,
    error: str | None = None,
    fetched: tuple[str, ...] = (),
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    clean = redacted(request) if request is not None else None
    text = _canonical(clean) if clean is not None else None  # serialised once: for the digest and the copy kept
    payload: dict[str, Any] = {
        "service": service,
        "hook": hook,
        "received": received.isoformat(),
        "client": client or {},
        "request_digest": safe_digest(clean, text) if clean is not None else None,
        "status": status,
        "http_status": http_status,
        "latency_ms": round(latency_ms, 2),
        "prefetch_fetched": list(fetched),
    }
    if outcome is not None:
        trace = outcome.trace()
        payload.update(
            {
                "patient_ref": outcome.request.patient_id,
                "ruleset": trace["ruleset"],
                "facts": trace["facts"],
                "fact_sources": trace["sources"],
                "fact_notes": trace["notes"],
                "fired": trace["fired"],
                "dose": trace["dose"],
                "dose_history": trace["dose_history"],
                "pk": trace.get("pk"),
                "warnings": trace["warnings"],
                "relevance": trace.get("relevance"),  # why this hook shows these cards (cds/relevance.py)
                "cards": outcome.cards,
                # what `audit replay` and shadow evaluation recompute the decision from: the request as the
                # mapper read it (prefetch completed, credentials removed), its record and "now"
                "inputs": outcome.inputs(_mapped_request(text, request, completed)),
            }
        )
    if body is not None and outcome is None:
        payload["response"] = body
    if error:
        payload["error"] = error
    return payload


def _mapped_request(text: str | None, request: Any, completed: dict[str, Any] | None) -> str:
    """The request the mapper read, without credentials, as canonical JSON text (kept as a string: readers that do
    not replay never parse it): the one received unless prefetch was completed into a new one."""
    if completed is None or completed is request:
        return text or "{}"
    return _canonical(redacted(completed)) or "{}"


def _canonical(value: Any) -> str | None:
    """Canonical JSON that can be stored (UTF-8), or None."""
    try:
        text = canonical_json(value)
        text.encode()
    except (ValueError, TypeError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        return None
    return text


def safe_digest(clean: Any, text: str | None = None) -> str | None:
    """The request digest of a request whose credentials were removed (``redacted``), from its canonical JSON
    ``text`` when given; never raises (a refusal must still be recorded): a request the canonical form cannot
    encode is digested in ASCII-escaped JSON instead, one too deep for that gets no digest."""
    text = text if text is not None else _canonical(clean)
    if text is not None:
        return hashlib.sha256(text.encode()).hexdigest()
    try:
        ascii_text = json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    except (ValueError, TypeError, RecursionError):
        log.warning("request digest not computed for a request that cannot be serialised")
        return None
    return "ascii:" + hashlib.sha256(ascii_text.encode()).hexdigest()
