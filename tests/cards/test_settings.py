"""The display time zone of card dates (rules/mapping.yaml `card_display_time_zone`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cards.settings import display_zone
from cds.errors import RuleError
from tests.conftest import RULES


def test_the_project_shows_card_dates_in_utc() -> None:
    assert display_zone(RULES / "mapping.yaml") == "UTC"


def test_a_zone_is_read_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("version: 1\ncard_display_time_zone: Europe/Zurich\n", encoding="utf-8")
    assert display_zone(path) == "Europe/Zurich"
    path.write_text("version: 1\n", encoding="utf-8")
    assert display_zone(path) == "UTC"
    path.write_text("version: 1\ncard_display_time_zone: Mars/Olympus\n", encoding="utf-8")
    with pytest.raises(RuleError, match="not an IANA time zone"):
        display_zone(path)
