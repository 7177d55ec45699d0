"""`serve` and `config show` as a pharmacist starts a test service: options instead of source, masked secrets,
and explanation links that point at the server that made them."""

from __future__ import annotations

import logging
import logging.config
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.cli.main import main
from cds.service.app import create_app
from cds.service.config import ServiceConfig, listening_url, load_config
from tests.service.conftest import example

POSTGRES = "postgresql+psycopg://cds:hunter2@db.hospital.example/imatinib_cds"


@pytest.fixture()
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """serve passes its options to the workers in the environment: give it a copy, without IMATINIB_CDS_*."""
    copy = {k: v for k, v in os.environ.items() if not k.startswith("IMATINIB_CDS_")}
    copy["IMATINIB_CDS_LINK_SECRET_FILE"] = str(tmp_path / "link-secret")
    monkeypatch.setattr(os, "environ", copy)
    monkeypatch.chdir(tmp_path)
    return copy


def test_serve_on_another_port_puts_that_port_in_the_links(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    links: list[str] = []

    def run_in_process(app: str, **options: Any) -> None:
        """uvicorn's part: a worker's app from the environment serve leaves (without the SIGHUP handler and
        the frozen garbage collector of app_from_environment, which would outlive this test)."""
        assert app == "cds.service.app:app_from_environment"
        assert (options["host"], options["port"]) == ("127.0.0.1", 8765)
        body = example("order-sign-new-start-moderate-renal.json")
        with TestClient(create_app(load_config())) as client:
            cards = client.post("/cds-services/imatinib-order-sign", json=body).json()["cards"]
        links.extend(link["url"] for card in cards for link in card.get("links", []))

    monkeypatch.setattr("uvicorn.run", run_in_process)
    monkeypatch.setattr(logging.config, "dictConfig", lambda _: None)  # pytest's handlers keep the lines
    caplog.set_level(logging.INFO, logger="cds.service")
    assert main(["serve", "--port", "8765", "--db", f"sqlite:///{tmp_path}/audit.sqlite3"]) == 0
    assert links and all(url.startswith("http://127.0.0.1:8765/explain/") for url in links)
    started = [r.getMessage() for r in caplog.records if r.name == "cds.service"][:3]
    assert started[0].startswith("rules ") and ": version " in started[0] and ", digest " in started[0]
    assert started[1:] == [
        f"audit database sqlite:///{tmp_path}/audit.sqlite3",
        "explanation links and JWT audience: http://127.0.0.1:8765 (not configured: follows host and port)",
    ]


def test_config_show_masks_secrets_and_names_sources(
    environ: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text(
        "checkpoint_key_file: keys/checkpoint.pem\nfhir_servers: [https://u:pw@fhir.example/r4]\n", encoding="utf-8"
    )
    environ["IMATINIB_CDS_REFUSAL_BURST"] = "5"
    assert main(["config", "show", "--config", "config.yaml", "--db", POSTGRES, "--port", "8765"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and ":pw@" not in out
    for line in (
        "public_base_url: http://127.0.0.1:8765  (not set: follows host and port)  # default",
        "database_url: postgresql+psycopg://cds:***@db.hospital.example/imatinib_cds  # --db",
        "fhir_servers: https://u:***@fhir.example/r4  # configuration file",
        f"checkpoint_key_file: {tmp_path}/keys/checkpoint.pem  # configuration file",
        f"link_secret_file: {tmp_path}/link-secret  # IMATINIB_CDS_LINK_SECRET_FILE",
        "refusal_burst: 5  # IMATINIB_CDS_REFUSAL_BURST",
        "port: 8765  # --port",
    ):
        assert line in out.splitlines()


def test_config_show_binds_to_loopback_without_trusted_clients(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show", "--host", "0.0.0.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "host: 127.0.0.1  # loopback: no trusted_clients (asked for 0.0.0.0)" in lines
    assert "public_base_url: http://127.0.0.1:8080  (not set: follows host and port)  # default" in lines


def test_links_follow_the_listening_address_unless_a_public_url_is_set() -> None:
    assert ServiceConfig(port=8765).base == "http://127.0.0.1:8765"
    assert ServiceConfig(port=8765, public_base_url="https://cds.example/imatinib/").base == (
        "https://cds.example/imatinib"
    )
    assert listening_url("::1", 9000) == "http://[::1]:9000"
    assert not listening_url("0.0.0.0", 9000).startswith("http://0.0.0.0")
