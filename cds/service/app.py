"""The FastAPI application: one factory, rules loaded at start-up, errors mapped to OperationOutcomes."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds import __version__
from cds.audit import AuditStore
from cds.audit.checkpoint import Checkpoints, CheckpointSigner
from cds.pipeline import Pipeline, utc_now
from cds.service.config import ServiceConfig, load_config
from cds.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cds.service.metrics import Metrics, may_scrape
from cds.service.outcome import operation_outcome
from cds.service.redact import install_log_scrubbing
from cds.service.routes import router
from cds.service.state import ServiceState, freeze_loaded_objects
from cds.web.links import LinkSigner, explain_path, load_secret
from cds.web.routes import router as web_router

log = logging.getLogger("cds.service")


def create_app(
    config: ServiceConfig,
    *,
    audit: AuditStore | None = None,
    install_sighup: bool = False,
    freeze_gc: bool = False,
    clock: Callable[[], datetime] = utc_now,
    metrics_registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The CDS Hooks service as an ASGI app, to serve or to mount under a prefix in another app (then
    ``public_base_url`` names the prefix too, and the host runs this app's lifespan: docs/embedding.md).

    ``audit`` is the audit store (default: one on ``config.database_url``); ``clock`` pins "now" (tests,
    replays); ``metrics_registry`` puts the metrics in a registry of the caller's (default: one of the app's own,
    served at /metrics); ``install_sighup`` and ``freeze_gc`` are for a serving process (``serve``).
    """
    install_log_scrubbing()  # no credential reaches a log line, whatever an exception or a client put in it
    state = build_state(config, audit, clock, Metrics(metrics_registry))
    signer = CheckpointSigner.from_file(config.checkpoint_key_file) if config.checkpoint_key_file else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if install_sighup and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=state.reload_rules, daemon=True).start())
        if freeze_gc:
            freeze_loaded_objects()
        if signer is not None:
            state.audit.checkpoints = Checkpoints(
                state.audit.head,
                signer,
                config.checkpoint_file,
                every=config.checkpoint_every,
                interval_s=config.checkpoint_interval_s,
            )
        yield
        state.auth_failures.close()  # the counts of the last few seconds are written too
        if state.audit.checkpoints is not None:  # a last checkpoint at shutdown covers every entry written
            state.audit.checkpoints.close()
            state.audit.checkpoints = None
        state.metrics.worker_stopped()

    app = FastAPI(
        title="imatinib-cds",
        version=__version__,
        lifespan=lifespan,
        description="CDS Hooks 2.0 service for imatinib TDM and dose adjustment",
    )
    app.state.service = state
    app.include_router(router)
    app.include_router(web_router)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(AccessLog, metrics=state.metrics)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    _register_errors(app)
    return app


def build_state(
    config: ServiceConfig,
    audit: AuditStore | None,
    clock: Callable[[], datetime] = utc_now,
    metrics: Metrics | None = None,
) -> ServiceState:
    signer = LinkSigner(load_secret(config.link_secret_file), config.link_ttl_s)

    def explain_url(hook_instance: str, client: str = "") -> str:
        return f"{config.base}{explain_path(hook_instance)}?token={signer.token(hook_instance, client)}"

    pipeline = Pipeline(config.rules_dir, explain_url=explain_url, clock=clock)
    store = audit or AuditStore(config.database_url)
    state = ServiceState(config, pipeline, store, signer, metrics=metrics or Metrics())
    if config.trusted_clients:
        state.authenticator = _authenticator(config, state.audit)
    return state


def _authenticator(config: ServiceConfig, audit: AuditStore) -> object:
    from cds.service.auth import ClientAuthenticator, TrustedClient

    clients = [
        TrustedClient(
            iss=c.iss,
            jwks_file=Path(c.jwks_file) if c.jwks_file else None,
            jku_allowlist=c.jku_allowlist,
            tenants=c.tenants,
        )
        for c in config.trusted_clients
    ]
    return ClientAuthenticator(clients, audit, leeway_s=config.jwt_leeway_s)


class AccessLog:
    """One access line per request, without the query string: explanation links carry a signed token there;
    and the request's count and duration in the metrics.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs every request
    through an extra task and memory streams, a measurable share of a call's CPU.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("cds.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before starting a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.request(scope, status, elapsed)
            if self.log.isEnabledFor(logging.INFO):
                method, path, ms = scope["method"], scope["path"], round(elapsed * 1000, 1)
                fields = {"event": "request", "method": method, "path": path, "status": status, "duration_ms": ms}
                self.log.info("%s %s %d %.1f ms", method, path, status, ms, extra=fields)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format, for the addresses in ``metrics_allow`` only (default: loopback)."""
    state: ServiceState = request.app.state.service
    if not may_scrape(request.scope, state.config.metrics_allow):
        return operation_outcome(403, "metrics are served only to the addresses in the metrics_allow setting")
    body = await run_in_threadpool(state.metrics.exposition)
    return Response(body, media_type=METRICS_CONTENT_TYPE)


def _register_errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return operation_outcome(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return operation_outcome(400, "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return operation_outcome(500, "internal error; it has been logged")


def app_from_environment() -> FastAPI:
    """uvicorn factory (``cds.service.app:app_from_environment``): configuration from the environment."""
    return create_app(load_config(), install_sighup=True, freeze_gc=True)
