"""The service mounted under a prefix in another app (issue 17): the JWT audience is the URL the client called, the
links in cards and pages carry the prefix, and the host runs the service's lifespan."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.config import ClientConfig, ServiceConfig
from tests.conftest import examples_clock
from tests.service.conftest import example, service_for
from tests.service.test_client_scoping import Client

PUBLIC = "https://apps.hospital.example/imatinib"  # the host's URL plus the mount prefix


@pytest.fixture()
def ehr(tmp_path: Path) -> tuple[Client, ClientConfig]:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [dict(jwk, kid="k1", alg="ES384", use="sig")]}))
    iss = "https://ehr.hospital.example/cds"
    return Client(iss, key), ClientConfig(iss=iss, jwks_file=str(tmp_path / "jwks.json"))


@pytest.fixture()
def host(config: ServiceConfig, audit: AuditStore, ehr: tuple[Client, ClientConfig]) -> Iterator[TestClient]:
    mounted = create_app(
        replace(config, public_base_url=PUBLIC, trusted_clients=(ehr[1],)), audit=audit, clock=examples_clock
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mounted.router.lifespan_context(mounted):  # Mount does not run a mounted app's lifespan
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"app": "host"}

    app.mount("/imatinib", mounted)
    with TestClient(app, base_url="https://apps.hospital.example") as http:
        yield http


def test_a_token_for_the_prefixed_url_is_accepted_and_one_without_it_refused(
    host: TestClient, ehr: tuple[Client, ClientConfig]
) -> None:
    client = ehr[0]
    body = example("order-sign-new-start-moderate-renal.json")
    path = "/imatinib" + service_for(body)
    assert host.post(path, json=body, headers=client.headers(PUBLIC + service_for(body))).status_code == 200
    unprefixed = "https://apps.hospital.example" + service_for(body)
    assert host.post(path, json=body, headers=client.headers(unprefixed)).status_code == 401
    doubled = PUBLIC + path  # what base + the full path would have made
    assert host.post(path, json=body, headers=client.headers(doubled)).status_code == 401
    discovery = host.get("/imatinib/cds-services", headers=client.headers(PUBLIC + "/cds-services"))
    assert discovery.status_code == 200 and len(discovery.json()["services"]) == 3
    assert host.get("/").json() == {"app": "host"}


def test_links_carry_the_prefix_and_open(host: TestClient, ehr: tuple[Client, ClientConfig]) -> None:
    body = example("patient-view-low-trough-cml.json")
    cards = host.post(
        "/imatinib" + service_for(body), json=body, headers=ehr[0].headers(PUBLIC + service_for(body))
    ).json()["cards"]
    url = cards[0]["links"][0]["url"]
    assert url.startswith(PUBLIC + "/explain/")
    page = host.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert page.status_code == 200
    assert 'href="/imatinib/rules"' in page.text
    assert 'src="/imatinib/explain/' in page.text  # the plot, under the prefix too
    plot = page.text.split('src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert host.get(plot).headers["content-type"] == "image/png"
    catalogue = host.get("/imatinib/rules")
    assert catalogue.status_code == 200 and 'href="/imatinib/rules"' in catalogue.text
