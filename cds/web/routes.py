"""Web pages: ``GET /explain/{hookInstance}`` (and its plot) behind the signed, expiring card-link token, and the
public rule catalogue ``GET /rules`` with each rule's feedback figures (``GET /rules/{rule_id}``: counts only).

A missing, altered or expired token gets 403 with a plain page and nothing about the decision (not even whether it
exists); a valid token for a hookInstance with no decision gets 404. Nothing here logs or links patient data: URLs
carry only the hookInstance and the token.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from cds.audit.stats import FeedbackStats
from cds.errors import CdsError
from cds.service.paths import link_prefix, raw_route_path
from cds.service.routes import state_of
from cds.service.state import ServiceState
from cds.web.explain import build_explanation, data_uri
from cds.web.links import explain_path
from cds.web.pages import catalogue_page, error_page, explanation_page, rule_feedback_page
from cds.web.plots import PlotUnavailable, plot_png

log = logging.getLogger("cds.web")
router = APIRouter()

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token must not leak to evidence sites through Referer
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
    ),
}


def _plain(status: int, heading: str, message: str) -> HTMLResponse:
    return HTMLResponse(error_page(heading, message), status_code=status, headers=HEADERS)


def _refused() -> HTMLResponse:
    return _plain(
        403,
        "Link not valid",
        "This explanation link is invalid or has expired. Open the card again in the EHR for a fresh link.",
    )


def _unknown() -> HTMLResponse:
    return _plain(404, "No such decision", "No decision is recorded for this link.")


def _client(state: ServiceState, hook_instance: str, request: Request) -> str | None:
    """The client the link was issued to, if its token is valid: it sees only that client's decisions."""
    token = request.query_params.get("token", "")
    return state.signer.client_of(hook_instance, token) if token and len(token) < 1000 else None


async def _recorded_decision(hook_instance: str, request: Request) -> dict[str, Any] | Response:
    """The audit entry a valid link points at; a plain 403 or 404 page (showing nothing) otherwise."""
    state = state_of(request)
    client = _client(state, hook_instance, request)
    if client is None:
        return _refused()
    entry = await run_in_threadpool(state.audit.decision, hook_instance, client)
    if entry is None or not isinstance(entry.get("payload"), dict):
        return _unknown()
    return entry


PLOT_SUFFIX = "/plot.png"


@router.get("/explain/{encoded:path}", include_in_schema=False)
async def explain_or_plot(encoded: str, request: Request) -> Response:
    """The page, or its plot under ``/plot.png``. The hookInstance is one percent-encoded path segment and may
    itself hold "/" (even "x/plot.png"), so it is read from the undecoded path, not from the decoded route."""
    segment = raw_route_path(request.scope).removeprefix("/explain/")
    if segment.endswith(PLOT_SUFFIX):
        return await _plot(unquote(segment.removesuffix(PLOT_SUFFIX)), request)
    return await _page(unquote(segment), request)


async def _page(hook_instance: str, request: Request) -> Response:
    entry = await _recorded_decision(hook_instance, request)
    if isinstance(entry, Response):
        return entry
    state = state_of(request)
    total = await run_in_threadpool(state.audit.count)
    feedback = await run_in_threadpool(state.audit.feedback_for, hook_instance, entry.get("client"))
    explanation = build_explanation(entry, state.pipeline.rule_set, total_entries=total, feedback=feedback)
    token = request.query_params["token"]
    prefix = link_prefix(state.config.public_base_url)  # the page's own links, when the app is mounted
    plot = f"{prefix}{explain_path(hook_instance)}{PLOT_SUFFIX}?token={quote(token, safe='')}"
    plot_src = plot if explanation.plot_note is None else None
    return HTMLResponse(explanation_page(explanation, plot_src, rules_href=f"{prefix}/rules"), headers=HEADERS)


async def _plot(hook_instance: str, request: Request) -> Response:
    entry = await _recorded_decision(hook_instance, request)
    if isinstance(entry, Response):
        return entry
    try:
        png = await run_in_threadpool(plot_png, entry["payload"], str(entry["entry_hash"]))
    except PlotUnavailable as exc:
        return _plain(404, "No plot", str(exc))
    except CdsError:
        log.exception("plot of an explanation failed")
        return _plain(500, "Plot not drawn", "The plot could not be drawn; the error has been logged.")
    return Response(png, media_type="image/png", headers=HEADERS)


@router.get("/rules", include_in_schema=False)
async def rules(request: Request) -> Response:
    query = request.query_params.get("q", "")[:200]
    state = state_of(request)
    stats = await _feedback_figures(state)
    href = f"{link_prefix(state.config.public_base_url)}/rules"
    page = await run_in_threadpool(partial(catalogue_page, rules_href=href), state.pipeline.rule_set, query, stats)
    return HTMLResponse(page, headers={**HEADERS, "Cache-Control": "no-cache"})


@router.get("/rules/{rule_id}", include_in_schema=False)
async def rule_feedback(rule_id: str, request: Request) -> Response:
    """A rule's feedback figures and weekly trend: for any rule of the loaded set, or one the log still counts."""
    state = state_of(request)
    try:
        title = state.pipeline.rule_set.rule(rule_id).title
    except KeyError:
        title = ""
    stats = await _feedback_figures(state)
    if stats is None:
        return _plain(503, "Feedback figures unavailable", "The audit log could not be read; try again later.")
    if not title and rule_id not in stats.rules:
        return _plain(404, "No such rule", f"No rule {rule_id[:200]} is loaded or counted in the audit log.")
    png = await run_in_threadpool(state.feedback_figures.trend_png, rule_id)
    href = f"{link_prefix(state.config.public_base_url)}/rules"
    page = rule_feedback_page(rule_id, title, stats, data_uri(png) if png else None, rules_href=href)
    return HTMLResponse(page, headers={**HEADERS, "Cache-Control": "no-cache"})


async def _feedback_figures(state: ServiceState) -> FeedbackStats | None:
    """The cached figures; None (the page says so) when the audit log cannot be read now."""
    try:
        return await run_in_threadpool(state.feedback_figures.current)
    except Exception:  # a database that is down must not take the rule catalogue with it
        log.exception("feedback figures not computed")
        return None
