"""The FastAPI application: one factory, rules loaded at start-up, errors mapped to OperationOutcomes."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds import __version__
from cds.audit import AuditStore
from cds.pipeline import Pipeline
from cds.service.config import ServiceConfig, load_config
from cds.service.outcome import operation_outcome
from cds.service.routes import router
from cds.service.state import ServiceState
from cds.web.links import LinkSigner, load_secret
from cds.web.routes import router as web_router

log = logging.getLogger("cds.service")


def create_app(config: ServiceConfig, *, audit: AuditStore | None = None, install_sighup: bool = False) -> FastAPI:
    state = build_state(config, audit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if install_sighup and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=state.reload_rules, daemon=True).start())
        yield

    app = FastAPI(
        title="imatinib-cds",
        version=__version__,
        lifespan=lifespan,
        description="CDS Hooks 2.0 service for imatinib TDM and dose adjustment",
    )
    app.state.service = state
    app.include_router(router)
    app.include_router(web_router)
    _log_requests(app)
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


def build_state(config: ServiceConfig, audit: AuditStore | None) -> ServiceState:
    signer = LinkSigner(load_secret(config.link_secret_file), config.link_ttl_s)

    def explain_url(hook_instance: str) -> str:
        return f"{config.base}/explain/{hook_instance}?token={signer.token(hook_instance)}"

    pipeline = Pipeline(config.rules_dir, explain_url=explain_url)
    state = ServiceState(config, pipeline, audit or AuditStore(config.database_url), signer)
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


def _log_requests(app: FastAPI) -> None:
    """One access line per request, without the query string: explanation links carry a signed token there."""
    access = logging.getLogger("cds.access")

    @app.middleware("http")
    async def log_access(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        access.info(
            "%s %s %d %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response


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
    return create_app(load_config(), install_sighup=True)
