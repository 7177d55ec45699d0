"""Shared by the web and browser tests: an app on a temp database with the examples' evaluation time pinned,
decisions made from fhir_examples."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.config import ServiceConfig
from tests.conftest import ROOT, examples_clock

# decisions with a PK estimate, and one without (a new start has no level)
WITH_PK = (
    "patient-view-low-trough-cml.json",
    "patient-view-gist-high-trough-oedema.json",
    "patient-view-random-level-3h-after-dose.json",
)
WITHOUT_PK = "order-sign-new-start-moderate-renal.json"


def pinned_app(config: ServiceConfig, audit: AuditStore) -> FastAPI:
    """The real app; its pipeline evaluates at the time fhir_examples/ are written for."""
    return create_app(config, audit=audit, clock=examples_clock)


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "fhir_examples" / name).read_text(encoding="utf-8"))
    return data


def service_path(body: dict[str, Any]) -> str:
    return f"/cds-services/imatinib-{body['hook']}"


def explain_links(response_body: dict[str, Any]) -> list[str]:
    return [link["url"] for card in response_body["cards"] for link in card.get("links") or []]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def patient_identifiers(body: dict[str, Any]) -> set[str]:
    """Every Patient id and identifier value in a request: none of them may appear in a URL or a log line."""
    found = {str(body.get("context", {}).get("patientId", ""))}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("resourceType") == "Patient":
                found.add(str(value.get("id", "")))
                found.update(str(i.get("value", "")) for i in value.get("identifier") or [] if isinstance(i, dict))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    return {f for f in found if f}
