"""``imatinib-cds evaluate REQUEST --explain-html OUT``: a self-contained page with the plot as a data: PNG."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from cds.cli.main import main
from tests.conftest import ROOT
from tests.web.helpers import WITHOUT_PK

NOW = "2026-11-25T12:00:00Z"


def evaluate(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out.html"
    code = main(["evaluate", str(ROOT / "fhir_examples" / name), "--now", NOW, "--explain-html", str(out)])
    assert code == 0
    assert '"cards"' in capsys.readouterr().out  # the response is still printed
    return out.read_text(encoding="utf-8")


def test_offline_page_embeds_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = evaluate(tmp_path, "patient-view-gist-high-trough-oedema.json", capsys)
    images = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', html)
    assert len(images) == 1
    src, alt = images[0]
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "target line at 1100 ng/mL" in alt
    assert "not recorded: offline evaluation" in html
    assert "<link" not in html and "<script" not in html and "http://127.0.0.1" not in html
    assert "Rule catalogue" not in html  # no links back to a server
    assert "IMA-TROUGH" in html and "Dose table" in html


def test_offline_page_without_pk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = evaluate(tmp_path, WITHOUT_PK, capsys)
    assert "No PK estimate was made for this decision" in html and "<img" not in html


def test_unwritable_output_is_invalid_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "out.html"
    code = main(["evaluate", str(ROOT / "fhir_examples" / WITHOUT_PK), "--now", NOW, "--explain-html", str(target)])
    assert code == 2
    assert "cannot write the file" in capsys.readouterr().err
