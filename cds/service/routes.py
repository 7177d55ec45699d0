"""HTTP handlers: discovery, service calls, feedback, health. Every authenticated service call leaves one audit
entry, feedback one per item; authentication failures on every endpoint are counted per minute instead."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from jsonschema import Draft202012Validator, ValidationError
from starlette.concurrency import run_in_threadpool

from cds.audit.group import Pending
from cds.cards.schema import feedback_schema, request_schema
from cds.errors import InvalidInput, MissingPrefetch
from cds.pipeline import Outcome, Pipeline
from cds.service.discovery import ESSENTIAL, discovery_document, hook_of, prefetch_for, resource_type
from cds.service.json_body import decode
from cds.service.outcome import operation_outcome, throttled, unauthorized
from cds.service.paths import route_path
from cds.service.records import decision_payload
from cds.service.redact import holds_secret, redacted, touches_secret
from cds.service.state import ServiceState

log = logging.getLogger("cds.service")
router = APIRouter()
# Decisions are CPU-bound Python: one process runs one at a time whatever the thread count (the GIL). They run
# in the event loop's own thread, first come first served: in a thread of their own (as before 2026-12-01)
# each answer then waited for the GIL, up to a switch interval (5 ms), to get back to the event loop while
# the next decision ran, and that wait was most of the tail latency. Run one worker process per core.
_FEEDBACK = Draft202012Validator(feedback_schema())
_REQUEST = Draft202012Validator(request_schema())


class BodyTooLarge(Exception):
    pass


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return decode(b"".join(chunks))  # bounded: nesting, number length, lone surrogates are 400s


async def authenticate(request: Request, state: ServiceState, endpoint: str) -> dict[str, Any] | None | Response:
    """The client identity; None when no clients are configured (loopback); on failure a bare 401, or a 429
    once this client has used up its budget of refusals. A failure is counted (AuthFailureLog), not written to
    the chain one by one: anyone who can reach the port can send them."""
    if state.authenticator is None:
        return None
    audience = state.config.base + route_path(request.scope)  # the URL the client called, mounted or not
    try:
        identity = await run_in_threadpool(state.authenticator.verify, request.headers.get("authorization"), audience)
    except Exception as exc:  # AuthError, and anything a key fetch raises: never tell the caller why
        # an AuthError carries both (cds.service.auth, imported only when clients are configured)
        reason, iss = str(getattr(exc, "reason", "error")), getattr(exc, "iss", None)
        remote = request.client.host if request.client else "unknown"
        wait = state.refusals.refuse(f"{remote}|{iss or ''}")
        state.auth_failures.record(endpoint, iss, reason, throttled=wait is not None)
        if wait is not None:
            return throttled(wait)
        log.warning("401 on %s from %s: %s", request.url.path, remote, exc)
        return unauthorized()
    return {"iss": identity.iss, "tenant": identity.tenant, "jti": identity.jti}


@router.get("/cds-services")
async def discovery(request: Request) -> Response:
    state = state_of(request)
    client = await authenticate(request, state, "discovery")
    if isinstance(client, Response):
        return client
    pipeline = state.pipeline
    return JSONResponse(discovery_document(pipeline.rule_set, pipeline.terminology))


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI request body from our JSON Schema (the handlers read raw JSON; this documents it, and lets a
    fuzzer such as schemathesis generate meaningful bodies)."""
    clean = {k: v for k, v in schema.items() if k not in ("$schema", "title")}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": clean}},
        }
    }


@router.post(
    "/cds-services/{service_id}",
    openapi_extra=_body(request_schema(), "a CDS Hooks 2.0 request, with prefetch"),
)
async def call_service(service_id: str, request: Request) -> Response:
    state = state_of(request)
    hook = hook_of(service_id)
    if hook is None:
        return operation_outcome(404, f"no CDS service {service_id!r}; see GET /cds-services")
    call = _Call(state, service_id, hook)
    client = await authenticate(request, state, "hook")
    if isinstance(client, Response):
        return client  # counted in aggregate; no chain entry per unauthenticated call (a flood would fill the disk)
    call.client = client
    return await _decide(call, request)


@dataclass
class _Call:
    """One service call as the audit log records it, whatever its outcome."""

    state: ServiceState
    service_id: str
    hook: str
    client: dict[str, Any] | None = None
    body: Any = None
    hook_instance: str = "unknown"
    started: float = field(default_factory=time.perf_counter)
    received: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def issuer(self) -> str:
        """Who the call's decision belongs to: the authenticated client's issuer ("" when not authenticated)."""
        return client_issuer(self.client)

    def payload(self, status: str, http_status: int, **details: Any) -> dict[str, Any]:
        return decision_payload(
            service=self.service_id,
            hook=self.hook,
            received=self.received,
            client=self.client,
            request=self.body if isinstance(self.body, dict) else None,
            status=status,
            http_status=http_status,
            latency_ms=_ms(self.started),
            **details,
        )

    def decide(
        self, pipeline: Pipeline, body: Any, fetched: tuple[str, ...], warnings: tuple[str, ...]
    ) -> tuple[Outcome, Pending, Future[int]]:
        """The decision and its audit entry; the entry is committed here too while commits are quick
        (AuditStore.record)."""
        outcome = pipeline.run(body, extra_warnings=warnings, client=self.issuer)
        payload = self.payload("ok", 200, outcome=outcome, completed=body, fetched=fetched)
        cards = tuple(c["uuid"] for c in outcome.cards)
        entry = Pending.of("decision", outcome.request.hook_instance, self.service_id, payload, cards, self.issuer)
        return outcome, entry, self.state.audit.record(entry)

    async def refuse(self, status: int, response: Response) -> Response:
        """Record a call that got no decision, then answer it (or 503 when even the record fails)."""
        fields = {"event": "refused", "service": self.service_id, "hookInstance": self.hook_instance, "status": status}
        log.info("%d %s hookInstance %s", status, self.service_id, self.hook_instance, extra=fields)
        body = json.loads(bytes(response.body))
        name = "unauthorized" if status == 401 else f"http-{status}"
        payload = self.payload(name, status, body=body)
        entry = Pending.of("decision", self.hook_instance, self.service_id, payload, client=self.issuer)
        if not await _audit(self.state, entry):
            return operation_outcome(503, "the audit log is unavailable")
        return response


async def _decide(call: _Call, request: Request) -> Response:
    state = call.state
    pipeline = state.pipeline  # one rule set for the whole call, even if a reload swaps it meanwhile
    try:
        call.body = await read_json(request, state.config.max_body_bytes)
        call.hook_instance = _hook_instance(call.body)
        _check_envelope(call.body)
        if call.body.get("hook") != call.hook:
            raise InvalidInput(
                "hook", f"service {call.service_id} answers {call.hook!r}, not {call.body.get('hook')!r}"
            )
        body, fetched, prefetch_warnings = await _complete_prefetch(request, state, pipeline, call.hook, call.body)
        outcome, entry, committed = call.decide(pipeline, body, fetched, prefetch_warnings)
    except BodyTooLarge:
        return await call.refuse(
            413, operation_outcome(413, f"request body larger than {state.config.max_body_bytes} bytes")
        )
    except InvalidInput as exc:
        return await call.refuse(400, operation_outcome(400, exc.message, [exc.path]))
    except MissingPrefetch as exc:
        return await call.refuse(412, operation_outcome(412, str(exc), [f"prefetch.{k}" for k in exc.keys]))
    except Exception:
        log.exception("500 on %s hookInstance %s", call.service_id, call.hook_instance)
        return await call.refuse(
            500, operation_outcome(500, "internal error: no decision was made; it has been logged")
        )
    if not await _committed(committed, entry):
        return operation_outcome(503, "the audit log is unavailable; no advice is given without a record")
    state.metrics.decided(call.service_id, outcome)
    hook_instance, cards, ms = outcome.request.hook_instance, len(outcome.cards), round(_ms(call.started), 1)
    fields = {"event": "decision", "service": call.service_id, "hookInstance": hook_instance, "status": 200}
    log.info(
        "200 %s hookInstance %s cards=%d %.1f ms",
        call.service_id,
        hook_instance,
        cards,
        ms,
        extra={**fields, "cards": cards, "duration_ms": ms},
    )
    return JSONResponse(outcome.response)


async def _complete_prefetch(
    request: Request, state: ServiceState, pipeline: Any, hook: str, body: Any
) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    """Fill what the client did not send: essential data or 412; optional data fetched if possible."""
    if not isinstance(body, dict):
        return body, (), ()
    templates = _templates(pipeline, hook)
    raw = body.get("prefetch")
    given: dict[str, Any] = raw if isinstance(raw, dict) else {}
    have = _resource_types(given)
    # key names are a request, not a contract: data that arrived under another key counts
    missing = {k: t for k, t in templates.items() if not _usable(given.get(k)) and resource_type(t) not in have}
    if not missing:
        return body, (), ()
    essential = {k: t for k, t in missing.items() if k in ESSENTIAL}
    optional = {k: t for k, t in missing.items() if k not in ESSENTIAL}
    results = await asyncio.gather(
        *(_fetch(request, state, body, part) for part in (essential, optional) if part), return_exceptions=True
    )
    prefetch, fetched, warnings = dict(given), [], []
    for part, result in zip([p for p in (essential, optional) if p], results, strict=True):
        if isinstance(result, MissingPrefetch):
            if part is essential:
                raise result
            warnings += [f"prefetch.{k} was not sent and could not be fetched: not considered" for k in result.keys]
        elif isinstance(result, BaseException):
            raise result
        else:
            prefetch.update({k: v for k, v in result.prefetch.items() if k in part})
            fetched += list(result.fetched)
            warnings += list(result.warnings)
    return dict(body, prefetch=prefetch), tuple(fetched), tuple(warnings)


_TEMPLATES: weakref.WeakKeyDictionary[Any, dict[str, dict[str, str]]] = weakref.WeakKeyDictionary()


def _templates(pipeline: Any, hook: str) -> dict[str, str]:
    """The prefetch templates of a rule set, computed once per loaded pipeline (a reload makes a new one)."""
    per_hook = _TEMPLATES.setdefault(pipeline, {})
    if hook not in per_hook:
        per_hook[hook] = prefetch_for(pipeline.rule_set, pipeline.terminology, hook)
    return per_hook[hook]


async def _fetch(request: Request, state: ServiceState, body: dict[str, Any], templates: dict[str, str]) -> Any:
    from cds.service.prefetch import complete_prefetch

    if not state.config.may_fetch_from(body.get("fhirServer")):
        # only FHIR servers the operator listed are ever contacted
        raise MissingPrefetch(sorted(templates))
    only = dict(body, prefetch={k: v for k, v in (body.get("prefetch") or {}).items() if k in templates})
    # a client per call: no cookies carried from one EHR session to the next, no proxies from the environment
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        return await complete_prefetch(only, templates, client=client, budget_s=state.config.fetch_budget_s)


def _resource_types(prefetch: dict[str, Any]) -> set[str]:
    found = set()
    for value in prefetch.values():
        if _usable(value):
            found.add(value["resourceType"])
            for entry in value.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    found.add(str(entry["resource"].get("resourceType")))
    return found


def _check_envelope(body: Any) -> None:
    """hook, hookInstance and context first: nothing is fetched for a request that cannot be understood."""
    if plainly_valid(body):
        return
    error = next(iter(sorted(_REQUEST.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = next(
                (k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance), ""
            )
            path = f"{path}.{missing}".lstrip(".")
        raise InvalidInput(path or "$", _diagnostic(error))


def _diagnostic(error: ValidationError) -> str:
    """jsonschema's message, which quotes the offending value, unless that value is or holds a credential:
    then the rule only."""
    if not touches_secret(error.absolute_path) and not holds_secret(error.instance):
        return str(error.message)
    if error.validator == "type":
        return f"expected a JSON {error.validator_value} (the value is not shown: it may hold a credential)"
    return f"breaks the schema rule {error.validator!r} (the value is not shown: it may hold a credential)"


def plainly_valid(body: Any) -> bool:
    """True only for a request that certainly meets the request schema; the usual case, decided without
    jsonschema (about 0.2 ms a call). Anything else, valid or not, goes through the schema, which alone
    words the error."""
    if not isinstance(body, dict) or "fhirAuthorization" in body:
        return False
    if not all(isinstance(body.get(k), str) and body[k] for k in ("hook", "hookInstance")):
        return False
    if not isinstance(body.get("context"), dict):
        return False
    server = body.get("fhirServer", "https://")
    prefetch = body.get("prefetch", {})
    return (
        isinstance(server, str)
        and server.startswith(("http://", "https://"))
        and isinstance(prefetch, dict)
        and all(v is None or _has_resource_type(v) for v in prefetch.values())
    )


def _has_resource_type(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("resourceType"), str) and bool(value["resourceType"])


def _usable(value: Any) -> bool:
    """A resource we can use as sent; a Bundle with a `next` link is a first page and must be completed."""
    if not isinstance(value, dict) or value.get("resourceType") in (None, "OperationOutcome"):
        return False
    links = value.get("link") if value.get("resourceType") == "Bundle" else None
    return not any(isinstance(link, dict) and link.get("relation") == "next" for link in links or [])


async def _audit(state: ServiceState, entry: Pending) -> bool:
    """Wait until the entry is committed (shared with whatever else is committing meanwhile)."""
    return await _committed(state.audit.submit(entry), entry)


async def _committed(commit: Future[int], entry: Pending) -> bool:
    try:
        await asyncio.wrap_future(commit)
    except Exception:
        log.exception("audit write failed for hookInstance %s", entry.hook_instance)
        return False
    return True


@router.post(
    "/cds-services/{service_id}/feedback",
    openapi_extra=_body(feedback_schema(), "CDS Hooks 2.0 feedback on cards this service issued"),
)
async def feedback(service_id: str, request: Request) -> Response:
    state = state_of(request)
    if hook_of(service_id) is None:
        return operation_outcome(404, f"no CDS service {service_id!r}")
    client = await authenticate(request, state, "feedback")
    if isinstance(client, Response):
        return client
    try:
        body = await read_json(request, state.config.max_body_bytes)
        items = _checked_feedback(body, state, client_issuer(client))
    except BodyTooLarge:
        return operation_outcome(413, f"request body larger than {state.config.max_body_bytes} bytes")
    except InvalidInput as exc:
        return operation_outcome(400, exc.message, [exc.path])
    for item, (hook_instance, seq) in items:
        payload = {"service": service_id, "client": client or {}, "decision_seq": seq, "feedback": redacted(item)}
        entry = Pending.of("feedback", hook_instance, service_id, payload, client=client_issuer(client))
        if not await _audit(state, entry):
            return operation_outcome(503, "the audit log is unavailable; feedback not recorded")
    state.metrics.feedback_recorded(service_id, [item for item, _ in items])
    return JSONResponse({"recorded": len(items)})


def client_issuer(client: dict[str, Any] | None) -> str:
    return str(client.get("iss") or "") if client else ""


def _checked_feedback(body: Any, state: ServiceState, issuer: str) -> list[tuple[dict[str, Any], tuple[str, int]]]:
    error = next(iter(sorted(_FEEDBACK.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise InvalidInput(path or "$", _diagnostic(error))
    items = []
    for i, item in enumerate(body["feedback"]):
        found = state.audit.card(item["card"], issuer)  # a card another client was shown is not this one's
        if found is None:
            raise InvalidInput(f"feedback[{i}].card", f"no card {item['card']} was issued by this service")
        items.append((item, found))
    return items


@router.get("/health")
async def health(request: Request) -> Response:
    """Evaluates a canary case through the current rule set and checks that the audit log can be written now."""
    state = state_of(request)
    pipeline = state.pipeline
    try:
        decision = await run_in_threadpool(
            pipeline.engine.evaluate,
            {
                "renal.crcl": 30.0,
                "regimen.new_start": True,
                "regimen.daily_mg": 400.0,
                "regimen.interval_h": 24.0,
                "regimen.status": "draft",
                "dx.indication": "CML",  # the 50% applies to the chronic-phase starting dose of 400 mg
                "dx.cml_phase": "chronic",
            },
            "order-sign",
        )
        entries = await run_in_threadpool(state.audit.count)
        writable = await run_in_threadpool(state.write_probe.writable)
    except Exception:
        log.exception("health check failed")
        return JSONResponse({"status": "failing"}, status_code=503)
    # a node that cannot record a decision answers every call with 503: take it out of the rotation
    healthy = decision.dose.action == "change" and decision.dose.daily_mg == 200 and writable
    body = {
        "status": "ok" if healthy else "failing",
        "ruleset": {"version": pipeline.rule_set.version, "digest": pipeline.rule_set.digest},
        "audit_entries": entries,
        "audit_writable": writable,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


def _hook_instance(body: Any) -> str:
    value = body.get("hookInstance") if isinstance(body, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 128 else "unknown"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
