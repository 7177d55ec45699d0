from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.service.config import ServiceConfig
from tests.web.helpers import (
    WITH_PK,
    WITHOUT_PK,
    example,
    explain_links,
    path_of,
    pinned_app,
    service_path,
)


@dataclass
class Decision:
    name: str
    request: dict[str, Any]
    response: dict[str, Any]
    link: str  # path and query of the card's explanation link

    @property
    def hook_instance(self) -> str:
        return str(self.request["hookInstance"])


@dataclass
class Site:
    client: TestClient
    config: ServiceConfig
    audit: AuditStore
    decisions: dict[str, Decision]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One app on a temp database with a decision for each example the tests open."""
    tmp = tmp_path_factory.mktemp("web")
    config = ServiceConfig(database_url=f"sqlite:///{tmp}/audit.sqlite3", link_secret_file=tmp / "secret")
    audit = AuditStore(config.database_url)
    with TestClient(pinned_app(config, audit)) as client:
        decisions = {}
        for name in (*WITH_PK, WITHOUT_PK):
            body = example(name)
            response = client.post(service_path(body), json=body)
            assert response.status_code == 200, response.text
            links = explain_links(response.json())
            assert links, name
            decisions[name] = Decision(name, body, response.json(), path_of(links[0]))
        yield Site(client, config, audit, decisions)
    audit.dispose()
