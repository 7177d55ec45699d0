"""Markup injection through FHIR text (issue 15 item 2) on the explanation page: whatever the request's text fields
hold, and whatever a stored card says, the page shows text, never a script, an image, an event handler, a
javascript: URL or a link to the attacker's site."""

from __future__ import annotations

import copy
import html
import re
import uuid
from typing import Any

import pytest

from tests.web.conftest import Site
from tests.web.helpers import example, explain_links, path_of, service_path
from tests.web.test_explain import record, stored_payload, text_of

HOSTILE = (
    "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)> "
    "<https://evil.example/login> [login](https://evil.example/login) ![p](https://evil.example/p.png)"
    "\n\n# STOP IMATINIB NOW"
)


def assert_inert(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered
    assert not re.search(r"<[^>]*\son\w+\s*=", lowered), "an event handler attribute"
    for src in re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", lowered):
        assert src.startswith("/explain/"), src  # only the token-protected plot
    for href in re.findall(r"href=\"([^\"]*)\"", lowered):
        assert href.startswith(("https://", "http://", "#", "/")), href
        assert "evil.example" not in href
    assert "<h1" not in lowered.split("</h1>", 1)[1]  # the page's one h1; none from card text


def poisoned(body: dict[str, Any]) -> dict[str, Any]:
    """Every free-text field a card or the page can show carries the hostile text: Condition, medication and
    code text, string values and notes on every resource."""
    body = copy.deepcopy(body)
    body["hookInstance"] = str(uuid.uuid4())

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("resourceType") not in (None, "Bundle", "Patient"):
                value["note"] = [{"text": HOSTILE}]
                for field in ("code", "medicationCodeableConcept", "valueCodeableConcept"):
                    if isinstance(value.get(field), dict):
                        value[field]["text"] = HOSTILE
                if "valueString" in value:
                    value["valueString"] = HOSTILE
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    return body


@pytest.mark.parametrize(
    "name",
    [
        "patient-view-anc-unreadable.json",  # the string value is shown on a missing-data card
        "patient-view-gist-ungraded-adverse-event.json",
        "patient-view-low-trough-cml.json",
        "order-sign-new-start-moderate-renal.json",
    ],
)
def test_hostile_request_text_is_inert_on_the_page(site: Site, name: str) -> None:
    body = poisoned(example(name))
    response = site.client.post(service_path(body), json=body)
    assert response.status_code == 200, response.text
    links = explain_links(response.json())
    assert links, name
    page = site.client.get(path_of(links[0]))
    assert page.status_code == 200
    assert_inert(page.text)


@pytest.mark.parametrize("value", ["<https://evil.example/login>", "[x](javascript:alert(1))", "<b onclick=x>hi</b>"])
def test_a_hostile_string_value_that_reaches_the_page_is_shown_as_text(site: Site, value: str) -> None:
    """The unreadable ANC string is quoted on a missing-data card, so it reaches the page (not vacuous)."""
    body = copy.deepcopy(example("patient-view-anc-unreadable.json"))
    body["hookInstance"] = str(uuid.uuid4())
    anc = next(e["resource"] for e in body["prefetch"]["observations"]["entry"] if e["resource"]["id"] == "lab-anc")
    anc["valueString"] = value
    page = site.client.get(path_of(explain_links(site.client.post(service_path(body), json=body).json())[0]))
    assert value in html.unescape(text_of(page.text))
    assert_inert(page.text)


def test_hostile_cards_stored_in_the_audit_render_inert(site: Site) -> None:
    """The page is safe even for a card whose text was never escaped (an older card builder, a bug)."""
    payload = stored_payload(site, "patient-view-low-trough-cml.json")
    for card in payload["cards"]:
        card["summary"] = HOSTILE
        card["detail"] = f"{HOSTILE}\n\n| fact | value |\n|---|---|\n| x | {HOSTILE} |\n\n- {HOSTILE}"
        card["source"]["label"] = HOSTILE
        card["source"]["url"] = "javascript:alert(1)"
        for suggestion in card.get("suggestions") or []:
            suggestion["label"] = HOSTILE
    payload["warnings"] = [HOSTILE]
    payload["dose"]["steps"] = [HOSTILE]
    page = site.client.get(record(site, "hostile-cards-1", payload)).text
    assert_inert(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "[x](javascript:alert(1))" in page and "&lt;https://evil.example/login&gt;" in page
