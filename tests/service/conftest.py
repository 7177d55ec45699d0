from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.config import ServiceConfig
from tests.conftest import ROOT, examples_clock

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "fhir_examples" / name).read_text(encoding="utf-8"))
    return data


def service_for(body: dict[str, Any]) -> str:
    return f"/cds-services/imatinib-{body['hook']}"


@pytest.fixture()
def config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        database_url=f"sqlite:///{tmp_path}/audit.sqlite3",
        link_secret_file=tmp_path / "secret",
        cors_origins=("https://ehr.example.org",),
    )


@pytest.fixture()
def audit(config: ServiceConfig) -> Iterator[AuditStore]:
    store = AuditStore(config.database_url)
    yield store
    store.dispose()


@pytest.fixture()
def client(config: ServiceConfig, audit: AuditStore) -> Iterator[TestClient]:
    with TestClient(create_app(config, audit=audit, clock=examples_clock)) as test_client:
        yield test_client
