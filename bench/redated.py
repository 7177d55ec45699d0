"""The fhir_examples requests re-dated to today, for a live server (shared by the benchmarks and post_examples.py).

A live server judges lab ages by its own clock: unmoved, the examples' levels and labs grow old and the answers
change with the day of the run. Moved by the time since they were written for, they get today's answers.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
_FHIR_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")


def load_mix() -> list[tuple[str, dict[str, Any]]]:
    """(service path, request) for every example, re-dated to now."""
    from cds.pipeline import EXAMPLES_EVALUATION_TIME

    shift = timedelta(days=(datetime.now(UTC) - EXAMPLES_EVALUATION_TIME).days)  # whole days: times of day kept
    mix = []
    for path in EXAMPLES:
        body = shifted(json.loads(path.read_text(encoding="utf-8")), shift)
        mix.append((f"/cds-services/imatinib-{body['hook']}", body))
    return mix


def shifted(value: Any, by: timedelta) -> Any:
    """Every FHIR date and dateTime moved by ``by`` (whole days for dates), the rest unchanged. Moved by whole
    days, dates and dateTimes stay consistent with each other (a dose on a date, a level at a time)."""
    if isinstance(value, dict):
        return {k: shifted(v, by) for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, by) for v in value]
    if not isinstance(value, str) or not _FHIR_TIME.match(value):
        return value
    if "T" not in value:
        return (date.fromisoformat(value) + timedelta(days=by.days)).isoformat()
    moved = datetime.fromisoformat(value) + by
    return moved.isoformat().replace("+00:00", "Z") if value.endswith("Z") else moved.isoformat()
