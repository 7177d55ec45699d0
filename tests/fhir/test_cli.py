"""`imatinib-cds facts`: one line per fact with its source, exit 0; exit 2 and one line on invalid input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds.cli.main import main
from tests.fhir.helpers import EXAMPLES

NOW = ["--now", "2026-11-25T12:00:00Z"]


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts", str(EXAMPLES / "order-sign-new-start-moderate-renal.json"), *NOW]) == 0
    out = capsys.readouterr().out.splitlines()
    crcl = next(line for line in out if line.startswith("renal.crcl "))
    assert "35 mL/min" in crcl and "Observation/lab-creat (2026-11-23T08:30:00+00:00)" in crcl
    assert any(line.startswith("doses: 0 from none") for line in out)


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts", str(EXAMPLES / "patient-view-low-trough-cml.json"), *NOW, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["facts"]["level.conc"]["value"] == 620.0 and data["doseSource"] == "order-regimen"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("<html>502 Bad Gateway</html>", "$: not JSON", id="html"),
        pytest.param(
            '{"hook": "order-sign", "hookInstance": "x", "context": {}, "prefetch": {"p": "<html>"}}',
            "prefetch.p: expected a FHIR resource, got HTML",
            id="html-prefetch",
        ),
    ],
)
def test_invalid_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    path = tmp_path / "request.json"
    path.write_text(content)
    assert main(["facts", str(path), *NOW]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_bad_now_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts", str(EXAMPLES / "patient-view-tdm-due.json"), "--now", "yesterday"]) == 2
    assert "--now" in capsys.readouterr().err
