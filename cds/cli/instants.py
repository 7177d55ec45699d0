"""Date-time options of the command line (`--now`, `--since`): ISO 8601 with a UTC offset, or a one-line error."""

from __future__ import annotations

from datetime import datetime

from cds.errors import InvalidInput


def parse_instant(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(option, f"not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        raise InvalidInput(option, "needs a UTC offset, e.g. 2026-11-25T12:00:00Z")
    return moment
