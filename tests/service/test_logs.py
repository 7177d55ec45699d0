"""Structured logs (issue 17): one JSON object a line, with the call's ids and timing, never a credential or
patient data beyond ids."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.cli.serve import metrics_folder
from cds.service.config import MULTIPROC_ENV, ConfigError, load_config
from cds.service.logs import JsonFormatter, logging_config
from cds.service.redact import ScrubCredentials
from tests.service.conftest import example, service_for

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz"


def record(message: str, *args: object, exc: BaseException | None = None, **extra: Any) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.LogRecord("cds.service", logging.WARNING, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def test_a_line_holds_the_fields_the_service_attached() -> None:
    line = json.loads(
        JsonFormatter().format(
            record("200 %s", "x", event="decision", service="imatinib-order-sign", hookInstance="h-1", status=200)
        )
    )
    assert line["event"] == "decision" and line["level"] == "warning" and line["logger"] == "cds.service"
    assert (line["service"], line["hookInstance"], line["status"]) == ("imatinib-order-sign", "h-1", 200)
    assert line["time"].endswith("+00:00")


def test_credentials_are_scrubbed_from_messages_and_exceptions() -> None:
    try:
        raise ValueError(f"upstream said Bearer {TOKEN}")
    except ValueError as exc:
        caught = exc
    text = JsonFormatter().format(record("401 from %s: Bearer %s", "10.0.0.1", TOKEN, exc=caught))
    line = json.loads(text)
    assert TOKEN not in text and "[redacted]" in line["event"]
    assert line["error"] == "ValueError" and "Traceback" in line["traceback"]


@pytest.fixture()
def json_lines() -> Iterator[io.StringIO]:
    """The service's loggers written as JSON lines into a buffer, through the scrubber, as `serve` does."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ScrubCredentials())
    logger = logging.getLogger("cds")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_call_logs_ids_and_timing_only(client: TestClient, json_lines: io.StringIO) -> None:
    body = example("order-sign-new-start-moderate-renal.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}  # no trusted clients: not checked, and never logged
    assert client.post(service_for(body), json=body, headers=headers).status_code == 200
    patient = dict(body["prefetch"]["patient"], birthDate="not a date")
    refused = client.post(service_for(body), json=dict(body, prefetch=dict(body["prefetch"], patient=patient)))
    assert refused.status_code == 400
    text = json_lines.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    (decision,) = [line for line in lines if line["event"] == "decision"]
    assert decision["hookInstance"] == body["hookInstance"] and decision["service"] == "imatinib-order-sign"
    assert decision["status"] == 200 and decision["cards"] == 1 and decision["duration_ms"] > 0
    access = [line for line in lines if line["event"] == "request"]
    assert [a["status"] for a in access] == [200, 400] and all(a["method"] == "POST" for a in access)
    patient = body["prefetch"]["patient"]
    for secret in (TOKEN, patient["name"][0]["family"], patient["birthDate"], "not a date"):
        assert secret not in text


def test_the_logging_configuration_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(logging_config("json"))
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("cds.access").info("GET / 200", extra={"event": "request", "status": 200})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["Started server process [42]", "request"]


def test_the_log_format_setting_is_checked() -> None:
    assert load_config(env={"IMATINIB_CDS_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="log_format"):
        load_config(env={"IMATINIB_CDS_LOG_FORMAT": "xml"})


def test_several_workers_get_a_fresh_metrics_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    with metrics_folder(1):
        assert MULTIPROC_ENV not in os.environ
    with metrics_folder(2):
        folder = Path(os.environ[MULTIPROC_ENV])
        assert folder.parent == tmp_path and not list(folder.iterdir())
    assert not folder.exists() and MULTIPROC_ENV not in os.environ
    given = tmp_path / "operator"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"old run")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with metrics_folder(2):
        assert not list(given.glob("*.db"))  # emptied of an earlier run's values
    assert given.is_dir()  # the operator's folder stays
