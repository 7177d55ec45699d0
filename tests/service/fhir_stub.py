"""A tiny real FHIR server for tests: stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0), in a thread.

Serves, under ``base_path`` (default ``/fhir``), from an in-memory list of resources:

* read: ``GET {base}/{Type}/{id}`` -> the resource, or 404 with an OperationOutcome;
* search: ``GET {base}/{Type}?...`` (any type) -> a searchset Bundle. ``patient``/``subject`` filter on
  ``subject``/``patient`` references (``Patient/{id}`` or the bare id), ``_id`` on the id; other parameters
  (``_sort``, ``code``, ...) are ignored. ``_count`` (or ``page_size``) pages the result with ``next`` links
  (``_offset``); ``next_origin`` makes those links point at another origin.

Options: ``token`` (requests without ``Authorization: Bearer <token>`` get 401), ``delay_s`` (before every answer).
Every request is recorded in ``requests`` as ``(path with query, Authorization header or None)``.

    stub = FhirStub(resources, token="t", page_size=2)
    with stub as base_url:          # e.g. "http://127.0.0.1:43117/fhir"
        ...
    stub.requests
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


class FhirStub:
    def __init__(
        self,
        resources: Iterable[Mapping[str, Any]],
        *,
        token: str | None = None,
        page_size: int | None = None,
        delay_s: float = 0.0,
        base_path: str = "/fhir",
        next_origin: str | None = None,
    ) -> None:
        self.resources = [dict(r) for r in resources]
        self.token = token
        self.page_size = page_size
        self.delay_s = delay_s
        self.base_path = base_path.rstrip("/")
        self.next_origin = next_origin
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def __enter__(self) -> str:
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fhir-stub", daemon=True)
        self._thread.start()
        return self.origin + self.base_path

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()  # wakes handlers sleeping in delay_s
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def origin(self) -> str:
        assert self._server is not None, "use FhirStub as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- FHIR ---------------------------------------------------------------------------------------------

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((path, authorization))
        self._stop.wait(self.delay_s)
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, _outcome("login", "no or wrong bearer token")
        url = urlsplit(path)
        if not url.path.startswith(self.base_path + "/"):
            return 404, _outcome("not-found", "not under the FHIR base")
        parts = url.path[len(self.base_path) + 1 :].strip("/").split("/")
        if len(parts) == 2:
            return self.read(*parts)
        if len(parts) == 1 and parts[0]:
            return 200, self.search(parts[0], dict(parse_qsl(url.query)))
        return 404, _outcome("not-supported", "only read and type-level search")

    def read(self, resource_type: str, rid: str) -> tuple[int, dict[str, Any]]:
        for resource in self.resources:
            if resource.get("resourceType") == resource_type and resource.get("id") == rid:
                return 200, resource
        return 404, _outcome("not-found", f"{resource_type}/{rid} is not known")

    def search(self, resource_type: str, params: dict[str, str]) -> dict[str, Any]:
        matches = [r for r in self.resources if r.get("resourceType") == resource_type and _matches(r, params)]
        count = int(params["_count"]) if "_count" in params else self.page_size
        offset = int(params.get("_offset", "0"))
        page = matches[offset : offset + count] if count else matches
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
        if count and offset + count < len(matches):
            origin = self.next_origin or self.origin
            query = urlencode(params | {"_count": str(count), "_offset": str(offset + count)})
            bundle["link"] = [{"relation": "next", "url": f"{origin}{self.base_path}/{resource_type}?{query}"}]
        bundle["entry"] = [self.entry(r) for r in page]
        return bundle

    def entry(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        full_url = f"{self.origin}{self.base_path}/{resource['resourceType']}/{resource.get('id')}"
        return {"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}}


def _matches(resource: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    if "_id" in params and resource.get("id") != params["_id"]:
        return False
    patient = params.get("patient", params.get("subject"))
    if patient is None:
        return True
    wanted = {patient, f"Patient/{patient}"}
    refs = [resource.get(field) for field in ("subject", "patient")]
    return any(isinstance(ref, Mapping) and ref.get("reference") in wanted for ref in refs)


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that gave up is not an error
        pass


def _handler_for(stub: FhirStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = stub.answer(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", "Bearer")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
