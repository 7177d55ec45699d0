"""Prefetch completion (CDS Hooks 2.0 §Prefetch, notes §2.3): fill the template keys the CDS Client left unsatisfied.

Per template key:

* a FHIR resource from the client (``resourceType`` present, not an OperationOutcome) is used as is; a Bundle the
  client paginated (``link[relation=next]``) has its remaining pages fetched and merged;
* absent, ``null``, an OperationOutcome or anything that is not a resource: the rendered template is fetched from
  ``fhirServer`` (https; http only on loopback), with ``Authorization: Bearer`` when ``fhirAuthorization`` is given;
* a template whose tokens this request cannot fill is skipped (left out of the result, never missing).

All fetches run concurrently under one deadline (``budget_s``). Searches follow ``next`` links on the fhirServer's
origin only, at most ``max_pages`` pages, merged into one searchset Bundle. Keys that could not be completed raise
``MissingPrefetch(sorted(keys))`` (the app answers 412); the reason for each key is attached as an exception note.

The access token travels only in the Authorization header: it is never logged, stored, or put in warnings,
exception messages or notes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from cds.errors import InvalidInput, MissingPrefetch
from cds.numbers import format_number

__all__ = ["PrefetchResult", "complete_prefetch", "render_template"]

_TOKEN = re.compile(r"\{\{(.*?)\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
_REFERENCE = re.compile(r"[A-Za-z]{1,64}/[A-Za-z0-9\-.]{1,64}")  # "Practitioner/123": kept whole, forms a read
_BEARER = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: nothing that could split a header
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PrefetchResult:
    prefetch: dict[str, Any]  # every template key -> a resource or Bundle (fetched ones merged in)
    fetched: tuple[str, ...]  # keys we fetched (wholly, or the remaining pages of a client-paginated Bundle)
    warnings: tuple[str, ...]  # e.g. "prefetch.observations: OperationOutcome from the client; fetched from fhirServer"


class _FetchError(Exception):
    """Why one key could not be completed; the message never contains the access token."""


@dataclass(frozen=True)
class _Need:
    """A key to fetch: ``path`` (rendered template, relative to fhirServer), or ``page`` (the client's first page)."""

    key: str
    why: str
    path: str | None = None
    page: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class _Fhir:
    """One request's view of its FHIR server; ``headers`` hold the bearer token and are kept out of ``repr``."""

    client: httpx.AsyncClient
    base: httpx.URL
    headers: Mapping[str, str] = field(repr=False)
    deadline: float
    max_pages: int


# --- templates ----------------------------------------------------------------------------------------------


def render_template(template: str, context: Mapping[str, Any], user: str | None) -> str | None:
    """Fill the CDS Hooks 2.0 tokens of ``template``; None when any token cannot be filled.

    ``user`` is the hook's ``context.userId`` (e.g. ``"PractitionerRole/123"``) and feeds the ``user…Id`` tokens.
    Token values are URL-encoded; a ``Type/id`` value keeps its slash so that ``{{context.userId}}`` forms a read.
    """
    parts = _TOKEN.split(template)  # odd indices are token names
    rendered: list[str] = []
    for i, part in enumerate(parts):
        value = _token_value(part.strip(), context, user) if i % 2 else _literal(part)
        if value is None:
            return None
        rendered.append(value)
    return "".join(rendered)


def _literal(text: str) -> str | None:
    return None if "{{" in text or "}}" in text else text


def _token_value(name: str, context: Mapping[str, Any], user: str | None) -> str | None:
    if name.startswith("context."):
        return _encode(context.get(name.removeprefix("context.")))
    if name in _USER_TOKENS:
        return _encode(_user_id(user, _USER_TOKENS[name]))
    return None


def _user_id(user: str | None, resource_type: str) -> str | None:
    parts = user.rstrip("/").split("/") if isinstance(user, str) else []
    return parts[-1] if len(parts) >= 2 and parts[-2] == resource_type else None


def _encode(value: object) -> str | None:
    """URL-encode a token value; None for non-strings, blanks and dot-only values or ids (they would climb paths)."""
    if not isinstance(value, str) or value.strip(".").strip() == "":
        return None
    if _REFERENCE.fullmatch(value):
        return None if value.rpartition("/")[2].strip(".") == "" else value
    return quote(value, safe="")


# --- the request --------------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    return "an array" if isinstance(value, list) else f"a {type(value).__name__}"


def _object(request: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = request.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(name, f"expected an object, got {_kind(value)}")
    return value


def _problem(prefetch: Mapping[str, Any], key: str) -> str | None:
    """Why the client's value for ``key`` cannot be used as is (None: it can)."""
    if key not in prefetch:
        return "not sent by the client"
    value = prefetch[key]
    if value is None:
        return "null from the client"
    if not isinstance(value, Mapping) or not isinstance(value.get("resourceType"), str):
        return f"not a FHIR resource from the client ({_kind(value)})"
    return "OperationOutcome from the client" if value["resourceType"] == "OperationOutcome" else None


def _triage(
    templates: Mapping[str, str], prefetch: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[dict[str, Any], list[_Need], list[str]]:
    """Split the template keys into ready values, keys to fetch, and skipped keys (as warnings)."""
    user = context.get("userId") if isinstance(context.get("userId"), str) else None
    ready: dict[str, Any] = {}
    needs: list[_Need] = []
    warnings: list[str] = []
    for key, template in templates.items():
        problem = _problem(prefetch, key)
        if problem is None and _next_link(prefetch[key]) is None:
            ready[key] = prefetch[key]
        elif problem is None:
            needs.append(_Need(key, "paginated by the client", page=prefetch[key]))
        elif (path := render_template(template, context, user)) is not None:
            needs.append(_Need(key, problem, path=path))
        else:
            warnings.append(f"prefetch.{key}: {problem}; template tokens not fillable from this request (skipped)")
    return ready, needs, warnings


def _fhir_server(value: object) -> httpx.URL:
    """The fhirServer as a base URL ending in '/'; raises _FetchError when it cannot be used."""
    if not isinstance(value, str) or not value:
        raise _FetchError("no fhirServer in the request")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise _FetchError("fhirServer is not a valid URL") from exc
    if not url.host or url.userinfo or url.query or url.fragment:
        raise _FetchError("fhirServer must be a plain absolute URL (no credentials, query or fragment)")
    if url.scheme != "https" and not (url.scheme == "http" and _is_loopback(url.host)):
        raise _FetchError("fhirServer must be https (http only on loopback)")
    return url.copy_with(path=url.path.rstrip("/") + "/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _headers(authorization: object) -> dict[str, str]:
    """Request headers; the bearer token when ``fhirAuthorization`` is given (none for open servers)."""
    headers = {"Accept": "application/fhir+json"}
    if authorization is None:
        return headers
    if not isinstance(authorization, Mapping):
        raise InvalidInput("fhirAuthorization", f"expected an object, got {_kind(authorization)}")
    token = authorization.get("access_token")
    if not isinstance(token, str) or not _BEARER.fullmatch(token):
        raise InvalidInput("fhirAuthorization.access_token", "expected a bearer token (printable ASCII, no spaces)")
    return headers | {"Authorization": f"Bearer {token}"}


# --- Bundles ------------------------------------------------------------------------------------------------


def _next_link(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") != "Bundle" or not isinstance(resource.get("link"), list):
        return None
    for link in resource["link"]:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _entries(page: Mapping[str, Any], number: int) -> list[Any]:
    entries = page.get("entry", [])
    if not isinstance(entries, list):
        raise _FetchError(f"page {number}: Bundle.entry is {_kind(entries)}, expected an array")
    return entries


def _merge(pages: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One searchset Bundle: the first page's metadata (without links) and every page's entries, in order."""
    pages = list(pages)
    entries = [entry for number, page in enumerate(pages, 1) for entry in _entries(page, number)]
    merged = {k: v for k, v in pages[0].items() if k not in ("link", "entry")}
    return merged | {"type": "searchset", "entry": entries}


def _expected_type(path: str) -> str | None:
    """The resourceType a rendered template must answer with: Bundle for a search, Type for a read Type/id."""
    route, query, _ = path.partition("?")
    segments = route.strip("/").split("/")
    if query or len(segments) == 1:
        return "Bundle"
    return segments[0] if len(segments) == 2 else None


def _same_origin(url: httpx.URL, base: httpx.URL) -> bool:
    """Same origin (scheme, host, port) as the fhirServer."""
    return (
        url.scheme == base.scheme
        and url.host == base.host
        and (url.port or _DEFAULT_PORTS.get(url.scheme)) == (base.port or _DEFAULT_PORTS.get(base.scheme))
    )


# --- fetching -----------------------------------------------------------------------------------------------


async def _get(fhir: _Fhir, url: httpx.URL, expected: str | None) -> dict[str, Any]:
    """GET one FHIR resource; raises _FetchError with a token-free reason."""
    timeout = max(fhir.deadline - asyncio.get_running_loop().time(), 0.001)
    try:
        response = await fhir.client.get(url, headers=fhir.headers, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise _FetchError("fhirServer did not answer within the budget") from exc
    except httpx.HTTPError as exc:
        raise _FetchError(f"request to fhirServer failed ({type(exc).__name__})") from exc
    return _resource(response, expected)


def _resource(response: httpx.Response, expected: str | None) -> dict[str, Any]:
    if not response.is_success:
        raise _FetchError(f"fhirServer answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise _FetchError("fhirServer answered with something that is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise _FetchError(f"fhirServer answered with {_kind(body)} that is not a FHIR resource")
    if body["resourceType"] == "OperationOutcome":
        raise _FetchError("fhirServer answered with an OperationOutcome")
    if expected is not None and body["resourceType"] != expected:
        raise _FetchError(f"fhirServer answered with resourceType {body['resourceType']}, expected {expected}")
    return body


async def _remaining_pages(fhir: _Fhir, first: Mapping[str, Any], first_url: httpx.URL) -> dict[str, Any]:
    """Follow ``next`` links from ``first`` (same origin as fhirServer only) and merge all pages."""
    pages, url, link = [first], first_url, _next_link(first)
    while link is not None:
        if len(pages) >= fhir.max_pages:
            raise _FetchError(f"more than {fhir.max_pages} pages")
        url = url.join(link)
        if not _same_origin(url, fhir.base):
            raise _FetchError("next link points outside the fhirServer's origin (refused)")
        pages.append(await _get(fhir, url, "Bundle"))
        link = _next_link(pages[-1])
    return _merge(pages)


async def _complete(fhir: _Fhir, need: _Need) -> dict[str, Any]:
    if need.page is not None:
        return await _remaining_pages(fhir, need.page, fhir.base)
    path = need.path or ""
    url = fhir.base.join(path.lstrip("/"))
    if not _same_origin(url, fhir.base) or not url.raw_path.startswith(fhir.base.raw_path):
        raise _FetchError("template does not resolve under fhirServer")
    first = await _get(fhir, url, _expected_type(path))
    return await _remaining_pages(fhir, first, url) if first["resourceType"] == "Bundle" else first


async def _fetch(fhir: _Fhir, need: _Need, budget_s: float) -> dict[str, Any] | _FetchError:
    try:
        async with asyncio.timeout_at(fhir.deadline):
            return await _complete(fhir, need)
    except TimeoutError:
        return _FetchError(f"not complete within the {format_number(budget_s)} s budget")
    except _FetchError as exc:
        return exc


async def _fetch_all(
    request: Mapping[str, Any], needs: list[_Need], client: httpx.AsyncClient, budget_s: float, max_pages: int
) -> dict[str, dict[str, Any] | _FetchError]:
    try:
        base = _fhir_server(request.get("fhirServer"))
    except _FetchError as exc:
        return {need.key: exc for need in needs}
    deadline = asyncio.get_running_loop().time() + budget_s
    fhir = _Fhir(client, base, _headers(request.get("fhirAuthorization")), deadline, max_pages)
    outcomes = await asyncio.gather(*(_fetch(fhir, need, budget_s) for need in needs))
    return {need.key: outcome for need, outcome in zip(needs, outcomes, strict=True)}


async def complete_prefetch(
    request: Mapping[str, Any],
    templates: Mapping[str, str],
    *,
    client: httpx.AsyncClient,
    budget_s: float = 1.5,
    max_pages: int = 20,
) -> PrefetchResult:
    """Complete ``request``'s prefetch against ``templates``; raises MissingPrefetch naming what stays missing.

    The result holds only template keys (skipped templates are left out). InvalidInput is raised for a malformed
    ``prefetch``, ``context`` or ``fhirAuthorization`` (the latter only when something must be fetched).
    """
    if budget_s <= 0 or max_pages < 1:
        raise ValueError(f"need budget_s > 0 and max_pages >= 1, got budget_s={budget_s}, max_pages={max_pages}")
    ready, needs, warnings = _triage(templates, _object(request, "prefetch"), _object(request, "context"))
    outcomes = await _fetch_all(request, needs, client, budget_s, max_pages) if needs else {}
    fetched = {key: outcome for key, outcome in outcomes.items() if not isinstance(outcome, _FetchError)}
    failed = {n.key: f"prefetch.{n.key}: {n.why}; {outcomes[n.key]}" for n in needs if n.key not in fetched}
    if failed:
        raise _missing(failed)
    warnings += [f"prefetch.{n.key}: {n.why}; {_source(n)} from fhirServer" for n in needs]
    prefetch = {key: fetched[key] if key in fetched else ready[key] for key in templates if key in ready | fetched}
    return PrefetchResult(prefetch, tuple(n.key for n in needs), tuple(warnings))


def _source(need: _Need) -> str:
    return "remaining pages fetched" if need.page is not None else "fetched"


def _missing(failed: Mapping[str, str]) -> MissingPrefetch:
    error = MissingPrefetch(sorted(failed))
    for key in sorted(failed):
        error.add_note(failed[key])
    return error
