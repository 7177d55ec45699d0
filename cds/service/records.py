"""What the audit log keeps for each call: enough to show, for any card ever shown, exactly why."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from cds.audit import request_digest
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
    payload: dict[str, Any] = {
        "service": service,
        "hook": hook,
        "received": received.isoformat(),
        "client": client or {},
        "request_digest": safe_digest(clean) if clean is not None else None,
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
                "inputs": outcome.inputs(_mapped_request(clean, request, completed)),
            }
        )
    if body is not None and outcome is None:
        payload["response"] = body
    if error:
        payload["error"] = error
    return payload


def _mapped_request(clean: Any, request: Any, completed: dict[str, Any] | None) -> dict[str, Any]:
    """The request the mapper read, without credentials: the one received (already cleaned) unless prefetch was
    completed into a new one."""
    if completed is None or completed is request:
        return clean if isinstance(clean, dict) else {}
    cleaned: dict[str, Any] = redacted(completed)
    return cleaned


def safe_digest(clean: Any) -> str | None:
    """The request digest of a request whose credentials were removed (``redacted``); never raises (a refusal
    must still be recorded): a request the canonical form cannot encode is digested in ASCII-escaped JSON
    instead, one too deep for that gets no digest."""
    try:
        return request_digest(clean)
    except (ValueError, TypeError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        pass
    try:
        text = json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    except (ValueError, TypeError, RecursionError):
        log.warning("request digest not computed for a request that cannot be serialised")
        return None
    return "ascii:" + hashlib.sha256(text.encode()).hexdigest()
