"""Card display settings from rules/mapping.yaml (`card_display_time_zone`; default UTC)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from cds.errors import RuleError

DEFAULT_ZONE = "UTC"


def display_zone(path: Path) -> str:
    """The IANA time zone card dates are shown in; an unknown zone is an error when the rules load."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read the mapping settings: {exc}") from exc
    zone = (raw or {}).get("card_display_time_zone", DEFAULT_ZONE)
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError(f"{path}: card_display_time_zone {zone!r} is not an IANA time zone") from exc
    return str(zone)
