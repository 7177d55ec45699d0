from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.service.app import create_app
from cds.service.config import ServiceConfig
from tests.conftest import RULES, examples_clock, postgres_schema
from tests.pipeline.dose_variants import all_variants
from tests.service.conftest import service_for


def record_decisions(url: str, secret: Path) -> int:
    """Every dose variant of the examples posted to the service (one decision each); how many were answered."""
    config = ServiceConfig(database_url=url, link_secret_file=secret)
    audit = AuditStore(url)
    answered = 0
    try:
        with TestClient(create_app(config, audit=audit, clock=examples_clock)) as client:
            for i, variant in enumerate(all_variants()):
                body = dict(variant.request, hookInstance=f"replay-{i:04d}")
                answered += client.post(service_for(body), json=body).status_code == 200
    finally:
        audit.dispose()
    return answered


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """An audit log of a few hundred decisions made by the service: (url, decisions answered)."""
    folder = tmp_path_factory.mktemp("replay")
    with postgres_schema("replay_test", request.param, folder) as url:
        yield url, record_decisions(url, folder / "secret")


def candidate(tmp_path: Path, edits: dict[str, list[tuple[str, str]]]) -> Path:
    """A copy of the shipped rules with text replaced in the named files (path relative to rules/)."""
    folder = tmp_path / "candidate"
    shutil.copytree(RULES, folder)
    for name, replacements in edits.items():
        path = folder / name
        text = path.read_text(encoding="utf-8")
        for old, new in replacements:
            assert old in text, f"{old!r} not in {name}"
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    return folder
