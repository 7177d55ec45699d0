"""Smoke test of the card review harness (bench/cards.py, `make cards-review`) on two examples in Debian's
chromium: one PNG per request and the table as markdown and CSV, with figures that match the cards."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.browser.conftest import browser_missing
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

EXAMPLES = ("patient-view-low-trough-cml.json", "order-sign-rifampin-coprescribed.json")


def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cards", ROOT / "bench" / "cards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_harness_writes_a_png_per_request_and_the_table(tmp_path: Path) -> None:
    cards = harness()
    reviews = cards.review(tmp_path, EXAMPLES)
    assert [r.request for r in reviews] == sorted(EXAMPLES)
    for name in EXAMPLES:
        png = (tmp_path / name).with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (tmp_path / "cards.csv").open(encoding="utf-8") as f:
        rows = {row["request"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(EXAMPLES)
    for r in reviews:
        row = rows[r.request]
        assert int(row["cards"]) == len(r.cards) >= 1 and row["error"] == ""
        assert int(row["max detail lines"]) == max(r.detail_lines) > 0
        assert int(row["suggestions"]) == len(r.suggestion_labels)
        assert int(row["panel height px"]) > 100 * len(r.cards)  # drawn, not an empty panel
        assert row["active markup"] == "0"
    table = (tmp_path / "cards.md").read_text(encoding="utf-8")
    assert table.startswith("| request | hook | cards | max detail lines | suggestions |")
    assert all(f"| {name} |" in table for name in EXAMPLES)


def test_markup_in_card_detail_shows_as_the_ehr_would_render_it(tmp_path: Path) -> None:
    """The panel renders raw HTML like the Sandbox, so injected markup is counted, not hidden."""
    cards = harness()
    hostile = cards.Review(
        "hostile.json",
        "patient-view",
        [{"summary": "s", "indicator": "info", "detail": "<img src=x onerror=alert(1)> [x](javascript:alert(1))"}],
    )
    plain = cards.Review("plain.json", "patient-view", [{"summary": "s", "indicator": "info", "detail": "**ok**"}])
    cards.screenshot_all([hostile, plain], tmp_path)
    assert hostile.active_markup >= 2 and plain.active_markup == 0
    assert (tmp_path / "hostile.png").exists()
