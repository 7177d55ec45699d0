"""Prefetch completion: what is used as is, what is fetched (and how), what ends as MissingPrefetch (412)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds.errors import InvalidInput, MissingPrefetch
from cds.fhir import parse_request
from cds.service.prefetch import PrefetchResult, complete_prefetch, render_template
from tests.service.fhir_stub import FhirStub

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"
BASE = "https://fhir.example.org/r4"
TOKEN = "eyJhbGciOi.S3CR3T-access-token.xyz"  # must never show up in warnings or errors
PATIENT = "pt-1"
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "medications": "MedicationRequest?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&_sort=-date",
}

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


# --- helpers ------------------------------------------------------------------------------------------------


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources)}
    if next_url is not None:
        result["link"] = [{"relation": "self", "url": BASE}, {"relation": "next", "url": next_url}]
    return result | {"entry": [{"resource": r} for r in resources]}


def obs(oid: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "subject": {"reference": f"Patient/{PATIENT}"}}


def full_prefetch() -> dict[str, Any]:
    return {
        "patient": {"resourceType": "Patient", "id": PATIENT},
        "conditions": bundle({"resourceType": "Condition", "id": "c1"}),
        "medications": bundle({"resourceType": "MedicationRequest", "id": "m1"}),
        "observations": bundle(obs("o1")),
    }


def hook_request(
    prefetch: dict[str, Any] | None = None, *, server: str | None = BASE, token: bool = True
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": PATIENT, "userId": "Practitioner/dr-1"},
        "prefetch": full_prefetch() if prefetch is None else prefetch,
    }
    if server is not None:
        request["fhirServer"] = server
    if token:
        request["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "imatinib-cds",
        }
    return request


def without(key: str, **extra: Any) -> dict[str, Any]:
    prefetch = {k: v for k, v in full_prefetch().items() if k != key}
    return prefetch | extra


class Recorder:
    """A MockTransport handler that answers from ``routes`` (URL -> resource, status or callable) and records."""

    def __init__(self, routes: Mapping[str, Any] | None = None) -> None:
        self.routes = dict(routes or {})
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get(str(request.url), 404)
        if callable(answer):
            answer = answer(request)
            if asyncio.iscoroutine(answer):
                answer = await answer
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, int):
            return httpx.Response(answer, json={"resourceType": "OperationOutcome", "issue": []})
        return httpx.Response(200, json=answer)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def complete(
    request: Mapping[str, Any], handler: Handler, templates: Mapping[str, str] = TEMPLATES, **kwargs: Any
) -> PrefetchResult:
    async def run() -> PrefetchResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await complete_prefetch(request, templates, client=client, **kwargs)

    return asyncio.run(run())


def missing(request: Mapping[str, Any], handler: Handler, **kwargs: Any) -> MissingPrefetch:
    with pytest.raises(MissingPrefetch) as info:
        complete(request, handler, **kwargs)
    return info.value


def error_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *getattr(error, "__notes__", [])])


OBS_URL = f"{BASE}/Observation?patient={PATIENT}&_sort=-date"
PATIENT_URL = f"{BASE}/Patient/{PATIENT}"


# --- used as is ---------------------------------------------------------------------------------------------


def test_present_keys_are_used_untouched_and_the_server_is_not_contacted() -> None:
    request = hook_request()
    handler = Recorder()
    result = complete(request, handler)
    assert handler.requests == []
    assert result.fetched == () and result.warnings == ()
    assert list(result.prefetch) == list(TEMPLATES)
    assert all(result.prefetch[k] is request["prefetch"][k] for k in TEMPLATES)


def test_keys_outside_the_templates_are_not_returned() -> None:
    request = hook_request(full_prefetch() | {"extra": {"resourceType": "Patient", "id": "other"}})
    assert "extra" not in complete(request, Recorder()).prefetch


def test_nothing_to_fetch_needs_no_fhir_server_or_token() -> None:
    result = complete(hook_request(server=None, token=False), Recorder())
    assert result.fetched == ()


# --- fetched ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefetch", "why"),
    [
        pytest.param(without("observations"), "not sent by the client", id="absent"),
        pytest.param(without("observations", observations=None), "null from the client", id="null"),
        pytest.param(
            without("observations", observations={"resourceType": "OperationOutcome", "issue": []}),
            "OperationOutcome from the client",
            id="operation-outcome",
        ),
        pytest.param(
            without("observations", observations="<html>Tomcat error</html>"),
            "not a FHIR resource from the client (a str)",
            id="garbage",
        ),
    ],
)
def test_unsatisfied_key_is_fetched_with_the_bearer_token(prefetch: dict[str, Any], why: str) -> None:
    handler = Recorder({OBS_URL: bundle(obs("o1"), obs("o2"))})
    result = complete(hook_request(prefetch), handler)
    assert handler.urls == [OBS_URL]
    assert handler.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert handler.requests[0].headers["Accept"] == "application/fhir+json"
    assert result.fetched == ("observations",)
    assert [e["resource"]["id"] for e in result.prefetch["observations"]["entry"]] == ["o1", "o2"]
    assert result.prefetch["patient"] == full_prefetch()["patient"]
    assert result.warnings == (f"prefetch.observations: {why}; fetched from fhirServer",)


def test_open_server_gets_no_authorization_header() -> None:
    handler = Recorder({PATIENT_URL: {"resourceType": "Patient", "id": PATIENT}})
    result = complete(hook_request(without("patient"), token=False), handler)
    assert "Authorization" not in handler.requests[0].headers
    assert result.prefetch["patient"] == {"resourceType": "Patient", "id": PATIENT}


def test_all_missing_keys_are_fetched_concurrently_within_one_budget() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        path = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"resourceType": "Patient", "id": PATIENT} if path == PATIENT else bundle())

    urls = [PATIENT_URL, f"{BASE}/Condition?patient={PATIENT}", f"{BASE}/MedicationRequest?patient={PATIENT}", OBS_URL]
    handler = Recorder(dict.fromkeys(urls, slow))
    started = time.perf_counter()
    result = complete(hook_request({}), handler, budget_s=1.0)  # one after another would take 1.2 s
    assert time.perf_counter() - started < 1.0
    assert result.fetched == tuple(TEMPLATES) and sorted(handler.urls) == sorted(urls)
    assert list(result.prefetch) == list(TEMPLATES)


def test_token_values_are_url_encoded() -> None:
    request = hook_request(without("observations"))
    request["context"]["patientId"] = "a b&c=d"
    handler = Recorder()
    missing(request, handler)
    assert handler.requests[0].url.params["patient"] == "a b&c=d"
    assert handler.requests[0].url.raw_path.startswith(b"/r4/Observation?patient=a%20b%26c%3Dd&")


@pytest.mark.parametrize(
    "server",
    ["http://127.0.0.1:8080/fhir", "http://127.8.9.10/fhir/", "http://localhost:9/fhir", "http://[::1]:9/fhir"],
)
def test_http_is_allowed_on_loopback(server: str) -> None:
    url = server.rstrip("/") + f"/Patient/{PATIENT}"
    handler = Recorder({url: {"resourceType": "Patient", "id": PATIENT}})
    assert complete(hook_request(without("patient"), server=server), handler).fetched == ("patient",)


# --- pagination ---------------------------------------------------------------------------------------------


def test_next_links_are_followed_and_merged_into_one_searchset() -> None:
    page2 = f"{BASE}/Observation?page=2"
    handler = Recorder(
        {
            OBS_URL: bundle(obs("o1"), obs("o2"), next_url=page2),
            page2: bundle(obs("o3"), next_url="Observation?page=3"),  # relative: resolved against the page URL
            f"{BASE}/Observation?page=3": bundle(obs("o4")),
        }
    )
    result = complete(hook_request(without("observations")), handler)
    merged = result.prefetch["observations"]
    assert [e["resource"]["id"] for e in merged["entry"]] == ["o1", "o2", "o3", "o4"]
    assert merged["type"] == "searchset" and "link" not in merged
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in handler.requests)
    assert len(handler.requests) == 3


def test_a_bundle_paginated_by_the_client_gets_its_remaining_pages() -> None:
    page2 = f"{BASE}/Observation?page=2"
    prefetch = without("observations", observations=bundle(obs("o1"), next_url=page2))
    handler = Recorder({page2: bundle(obs("o2"))})
    result = complete(hook_request(prefetch), handler)
    assert handler.urls == [page2]
    assert [e["resource"]["id"] for e in result.prefetch["observations"]["entry"]] == ["o1", "o2"]
    assert result.fetched == ("observations",)
    assert result.warnings == (
        "prefetch.observations: paginated by the client; remaining pages fetched from fhirServer",
    )


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example.net/r4/Observation?page=2",
        "http://fhir.example.org/r4/Observation?page=2",  # same host, other scheme
        "https://fhir.example.org:8443/r4/Observation?page=2",  # same host, other port
        "//evil.example.net/r4/Observation?page=2",
    ],
)
def test_next_link_to_another_origin_is_refused(next_url: str) -> None:
    handler = Recorder({OBS_URL: bundle(obs("o1"), next_url=next_url)})
    error = missing(hook_request(without("observations")), handler)
    assert error.keys == ["observations"]
    assert handler.urls == [OBS_URL]
    assert "outside the fhirServer's origin" in error_text(error)


def test_client_page_linking_to_another_host_is_missing_and_not_followed() -> None:
    prefetch = without("observations", observations=bundle(obs("o1"), next_url="https://evil.example.net/x"))
    handler = Recorder()
    assert missing(hook_request(prefetch), handler).keys == ["observations"]
    assert handler.requests == []


def test_more_pages_than_max_pages_is_missing() -> None:
    handler = Recorder({OBS_URL: bundle(obs("o1"), next_url=OBS_URL)})  # a server that loops
    error = missing(hook_request(without("observations")), handler, max_pages=3)
    assert len(handler.requests) == 3
    assert "more than 3 pages" in error_text(error)


# --- missing ------------------------------------------------------------------------------------------------


def test_budget_exceeded_names_exactly_the_slow_keys() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=bundle())

    routes = {
        PATIENT_URL: {"resourceType": "Patient", "id": PATIENT},
        OBS_URL: slow,
        f"{BASE}/Condition?patient={PATIENT}": slow,
    }
    started = time.perf_counter()
    error = missing(
        hook_request(without("patient") | {"conditions": None, "observations": None}), Recorder(routes), budget_s=0.2
    )
    assert time.perf_counter() - started < 1.0
    assert error.keys == ["conditions", "observations"]
    assert "not complete within the 0.2 s budget" in error_text(error)


def test_budget_counts_every_page() -> None:
    async def page(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.08)
        return httpx.Response(200, json=bundle(obs("o"), next_url=f"{BASE}/Observation?page=n"))

    handler = Recorder({OBS_URL: page, f"{BASE}/Observation?page=n": page})
    assert missing(hook_request(without("observations")), handler, budget_s=0.3).keys == ["observations"]
    assert 2 <= len(handler.requests) <= 4


@pytest.mark.parametrize(
    ("server", "token"),
    [
        pytest.param(None, True, id="no-fhir-server-with-token"),
        pytest.param(None, False, id="no-fhir-server"),
        pytest.param("http://fhir.example.org/r4", True, id="plain-http"),
        pytest.param("ftp://fhir.example.org/r4", True, id="ftp"),
        pytest.param("https://user:pw@fhir.example.org/r4", True, id="credentials"),
        pytest.param("/r4", True, id="relative"),
    ],
)
def test_unusable_fhir_server_makes_every_unsatisfied_key_missing(server: str | None, token: bool) -> None:
    handler = Recorder()
    error = missing(
        hook_request({"patient": None, "conditions": full_prefetch()["conditions"]}, server=server, token=token),
        handler,
    )
    assert error.keys == ["medications", "observations", "patient"]
    assert handler.requests == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(404, "HTTP 404", id="read-404"),
        pytest.param(500, "HTTP 500", id="server-error"),
        pytest.param(401, "HTTP 401", id="unauthorized"),
        pytest.param(httpx.Response(302, headers={"Location": "https://evil.example.net/"}), "HTTP 302", id="redirect"),
        pytest.param(httpx.Response(200, text="<html>Tomcat</html>"), "not JSON", id="html"),
        pytest.param([1, 2], "an array that is not a FHIR resource", id="json-array"),
        pytest.param({"id": PATIENT}, "not a FHIR resource", id="no-resource-type"),
        pytest.param({"resourceType": "OperationOutcome", "issue": []}, "an OperationOutcome", id="outcome-200"),
        pytest.param(
            {"resourceType": "Observation", "id": "x"}, "resourceType Observation, expected Patient", id="wrong-type"
        ),
    ],
)
def test_failed_read_is_missing(answer: Any, reason: str) -> None:
    handler = Recorder({PATIENT_URL: answer})
    error = missing(hook_request(without("patient")), handler)
    assert error.keys == ["patient"]
    assert handler.urls == [PATIENT_URL]  # redirects are not followed
    assert error.__notes__[0].startswith("prefetch.patient: not sent by the client; ")
    assert reason in error.__notes__[0]


def test_search_answered_with_a_single_resource_is_missing() -> None:
    handler = Recorder({OBS_URL: obs("o1")})
    assert missing(hook_request(without("observations")), handler).keys == ["observations"]


def test_transport_error_is_missing() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    error = missing(hook_request(without("patient")), Recorder({PATIENT_URL: refuse}))
    assert error.keys == ["patient"]
    assert "request to fhirServer failed (ConnectError)" in error_text(error)


def test_one_failure_fails_the_call_but_names_only_that_key() -> None:
    routes = {PATIENT_URL: {"resourceType": "Patient", "id": PATIENT}, OBS_URL: 500}
    error = missing(hook_request(without("patient", observations=None)), Recorder(routes))
    assert error.keys == ["observations"]
    assert error.__notes__ == ["prefetch.observations: null from the client; fhirServer answered HTTP 500"]


# --- templates ----------------------------------------------------------------------------------------------

CONTEXT = {
    "patientId": "pt-1",
    "userId": "Practitioner/dr-1",
    "encounterId": "enc 7",
    "draftOrders": {"resourceType": "Bundle", "entry": []},
    "selections": ["MedicationRequest/request-123"],
    "count": 3,
    "dots": "..",
}


@pytest.mark.parametrize(
    ("template", "user", "expected"),
    [
        ("Patient/{{context.patientId}}", None, "Patient/pt-1"),
        (
            "Observation?patient={{context.patientId}}&code=http://loinc.org|123",
            None,
            "Observation?patient=pt-1&code=http://loinc.org|123",
        ),
        ("Encounter/{{context.encounterId}}", None, "Encounter/enc%207"),
        ("{{context.userId}}", None, "Practitioner/dr-1"),
        ("{{ context.patientId }}", None, "pt-1"),
        ("Practitioner/{{userPractitionerId}}", "Practitioner/dr-1", "Practitioner/dr-1"),
        ("PractitionerRole/{{userPractitionerRoleId}}", "PractitionerRole/r-9", "PractitionerRole/r-9"),
        ("Patient/{{userPatientId}}", "Patient/p-2", "Patient/p-2"),
        ("RelatedPerson/{{userRelatedPersonId}}", "RelatedPerson/rp-3", "RelatedPerson/rp-3"),
        ("Practitioner/{{userPractitionerId}}", "https://ehr.example.org/fhir/Practitioner/dr-1", "Practitioner/dr-1"),
        ("MedicationRequest?patient={{context.patientId}}&_count=50", None, "MedicationRequest?patient=pt-1&_count=50"),
        ("Patient?_id={{context.patientId}}", None, "Patient?_id=pt-1"),
    ],
)
def test_render_template(template: str, user: str | None, expected: str) -> None:
    assert render_template(template, CONTEXT, user) == expected


@pytest.mark.parametrize(
    ("template", "user"),
    [
        pytest.param("PractitionerRole/{{userPractitionerRoleId}}", "Practitioner/dr-1", id="other-user-type"),
        pytest.param("Practitioner/{{userPractitionerId}}", None, id="no-user"),
        pytest.param("Practitioner/{{userPractitionerId}}", "dr-1", id="bare-user-id"),
        pytest.param("Encounter/{{context.missing}}", None, id="absent-field"),
        pytest.param("MedicationRequest?_id={{context.draftOrders}}", None, id="draft-orders"),
        pytest.param("MedicationRequest/{{context.selections}}", None, id="selections"),
        pytest.param("X?n={{context.count}}", None, id="number"),
        pytest.param("Patient/{{context.dots}}", None, id="dot-segment"),
        pytest.param("Observation?date=ge{{today() - 90 days}}", None, id="fhirpath-3.0"),
        pytest.param("Medication/{{context.draftOrders.entry.resource.id}}", None, id="nested-path"),
        pytest.param("Patient/{{patientId}}", None, id="unqualified"),
        pytest.param("Patient/{{context.patientId}", None, id="unclosed"),
    ],
)
def test_unfillable_templates_render_to_none(template: str, user: str | None) -> None:
    assert render_template(template, CONTEXT, user) is None


def test_user_practitioner_id_comes_from_context_user_id() -> None:
    templates = TEMPLATES | {"user": "Practitioner/{{userPractitionerId}}"}
    handler = Recorder({f"{BASE}/Practitioner/dr-1": {"resourceType": "Practitioner", "id": "dr-1"}})
    result = complete(hook_request(), handler, templates)
    assert handler.urls == [f"{BASE}/Practitioner/dr-1"]
    assert result.prefetch["user"]["id"] == "dr-1"


def test_unfillable_template_skips_its_key_without_counting_it_missing() -> None:
    templates = TEMPLATES | {"role": "PractitionerRole/{{userPractitionerRoleId}}"}
    handler = Recorder()
    result = complete(hook_request(), handler, templates)  # userId is a Practitioner
    assert handler.requests == [] and "role" not in result.prefetch and result.fetched == ()
    assert result.warnings == (
        "prefetch.role: not sent by the client; template tokens not fillable from this request (skipped)",
    )


def test_client_value_for_an_unfillable_template_is_kept() -> None:
    role = {"resourceType": "PractitionerRole", "id": "r-1"}
    templates = TEMPLATES | {"role": "PractitionerRole/{{userPractitionerRoleId}}"}
    assert complete(hook_request(full_prefetch() | {"role": role}), Recorder(), templates).prefetch["role"] is role


# --- input and security -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param({"prefetch": ["x"]}, "prefetch", id="prefetch-array"),
        pytest.param({"context": "pt-1"}, "context", id="context-string"),
        pytest.param({"fhirAuthorization": "Bearer x"}, "fhirAuthorization", id="authorization-string"),
        pytest.param(
            {"fhirAuthorization": {"token_type": "Bearer"}}, "fhirAuthorization.access_token", id="no-access-token"
        ),
        pytest.param(
            {"fhirAuthorization": {"access_token": f"{TOKEN}\r\nX-Evil: 1"}},
            "fhirAuthorization.access_token",
            id="header-injection",
        ),
    ],
)
def test_malformed_request_parts_are_invalid_input(change: dict[str, Any], path: str) -> None:
    request = hook_request(without("patient")) | change
    handler = Recorder()
    with pytest.raises(InvalidInput) as info:
        complete(request, handler)
    assert info.value.path == path
    assert TOKEN not in error_text(info.value)
    assert handler.requests == []


def test_malformed_authorization_is_ignored_when_nothing_is_fetched() -> None:
    request = hook_request() | {"fhirAuthorization": {"access_token": 42}}
    assert complete(request, Recorder()).fetched == ()


def test_the_access_token_never_appears_in_results_warnings_or_errors() -> None:
    def echo(request: httpx.Request) -> httpx.Response:  # a server that echoes the header back
        return httpx.Response(
            403,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "forbidden", "diagnostics": request.headers["Authorization"]}],
            },
        )

    page2 = f"{BASE}/Observation?page=2"
    routes = {OBS_URL: bundle(obs("o1"), next_url=page2), page2: bundle(obs("o2")), PATIENT_URL: echo}
    result = complete(hook_request(without("observations")), Recorder(routes))
    assert TOKEN not in repr(result) + json.dumps(result.prefetch)
    error = missing(hook_request(without("patient")), Recorder(routes))
    assert TOKEN not in error_text(error)
    for handler in (
        Recorder({OBS_URL: bundle(obs("o1"), next_url="https://evil.example.net/")}),
        Recorder({OBS_URL: lambda r: asyncio.sleep(5)}),
    ):
        assert TOKEN not in error_text(missing(hook_request(without("observations")), handler, budget_s=0.1))


def test_request_is_not_modified() -> None:
    request = hook_request(without("observations", patient=None))
    before = copy.deepcopy(request)
    complete(request, Recorder({OBS_URL: bundle(), PATIENT_URL: {"resourceType": "Patient", "id": PATIENT}}))
    assert request == before


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="budget_s"):
        complete(hook_request(), Recorder(), budget_s=0)
    with pytest.raises(ValueError, match="max_pages"):
        complete(hook_request(), Recorder(), max_pages=0)


# --- over real HTTP, against the stub server ----------------------------------------------------------------


def example_resources(example: dict[str, Any]) -> list[dict[str, Any]]:
    resources = []
    for value in example["prefetch"].values():
        if value["resourceType"] == "Bundle":
            resources += [entry["resource"] for entry in value.get("entry", [])]
        else:
            resources.append(value)
    return resources


def stub_complete(request: Mapping[str, Any], **kwargs: Any) -> PrefetchResult:
    async def run() -> PrefetchResult:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await complete_prefetch(request, TEMPLATES, client=client, **kwargs)

    return asyncio.run(run())


def keyed(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["resourceType"], r["id"]): r for r in resources}


@pytest.mark.parametrize("name", ["patient-view-low-trough-cml.json", "order-sign-new-start-moderate-renal.json"])
def test_stub_round_trip_restores_an_example_prefetch(name: str) -> None:
    example = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    stub = FhirStub(example_resources(example), token=TOKEN, page_size=3)
    with stub as base_url:
        request = {k: v for k, v in example.items() if k != "prefetch"} | {"fhirServer": base_url}
        request["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 30,
            "scope": "patient/*.read",
            "subject": "imatinib-cds",
        }
        result = stub_complete(request)
    assert result.fetched == tuple(TEMPLATES)
    assert keyed(example_resources({"prefetch": result.prefetch})) == keyed(example_resources(example))
    assert result.prefetch["patient"] == example["prefetch"]["patient"]
    assert len(stub.requests) > len(TEMPLATES)  # the observations came in pages of 3
    assert {auth for _, auth in stub.requests} == {f"Bearer {TOKEN}"}
    original = parse_request(example)
    completed = parse_request(request | {"prefetch": result.prefetch})
    assert completed.resources.keys() == original.resources.keys()


def test_stub_open_server_and_a_missing_patient() -> None:
    example = json.loads((EXAMPLES / "patient-view-tdm-due.json").read_text(encoding="utf-8"))
    resources = [r for r in example_resources(example) if r["resourceType"] != "Patient"]
    stub = FhirStub(resources)
    with stub as base_url:
        request = {k: v for k, v in example.items() if k not in ("prefetch", "fhirAuthorization")}
        with pytest.raises(MissingPrefetch) as info:
            stub_complete(request | {"fhirServer": base_url})
    assert info.value.keys == ["patient"]
    assert {auth for _, auth in stub.requests} == {None}


def test_stub_rejects_a_wrong_token_and_a_slow_server_runs_out_of_budget() -> None:
    example = json.loads((EXAMPLES / "patient-view-tdm-due.json").read_text(encoding="utf-8"))
    request = {k: v for k, v in example.items() if k != "prefetch"}
    request["fhirAuthorization"] = {"access_token": "wrong-token"}
    with FhirStub(example_resources(example), token=TOKEN) as base_url:
        with pytest.raises(MissingPrefetch) as info:
            stub_complete(request | {"fhirServer": base_url})
    assert info.value.keys == sorted(TEMPLATES)
    assert "HTTP 401" in error_text(info.value)
    started = time.perf_counter()
    with FhirStub(example_resources(example), delay_s=3) as base_url:
        with pytest.raises(MissingPrefetch) as info:
            stub_complete(
                {k: v for k, v in request.items() if k != "fhirAuthorization"} | {"fhirServer": base_url}, budget_s=0.3
            )
    assert info.value.keys == sorted(TEMPLATES)
    assert time.perf_counter() - started < 1.5
