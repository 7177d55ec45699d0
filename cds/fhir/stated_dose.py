"""The daily dose an order's text states, to catch text and dose fields that disagree.

A client that applies a suggestion only in part (swaps the medication and its text, keeps the old dose fields)
leaves an order whose text says 600 mg/day while the dose fields give 100 mg/day; pharmacy dispenses the fields.
Only explicit forms are read ("600 mg/day", "400 mg once daily", "300 mg twice daily"); a text that states
different daily doses, or none, states nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

_MG = r"(\d+(?:\.\d+)?)\s*mg"
_PER_DAY = re.compile(_MG + r"\s*(?:/\s*day|per\s+day)\b", re.IGNORECASE)
_ONCE = re.compile(_MG + r"\s+(?:once\s+daily|daily|once\s+a\s+day|every\s+day|qd|od)\b", re.IGNORECASE)
_TWICE = re.compile(_MG + r"\s+(?:twice\s+daily|twice\s+a\s+day|bid|b\.i\.d\.|every\s+12\s+hours|q12h)", re.IGNORECASE)


def stated_daily_mg(texts: Iterable[str | None]) -> float | None:
    """The one daily dose the texts state, if they state exactly one.

    >>> stated_daily_mg(["imatinib 100 MG Oral Tablet - 600 mg once daily: 6 x 100 mg tablets"])
    600.0
    >>> stated_daily_mg(["300 mg twice daily (600 mg/day)", "1 tablet by mouth"])
    600.0
    >>> stated_daily_mg(["imatinib 400 MG Oral Tablet"]) is None
    True
    >>> stated_daily_mg(["400 mg daily; if not tolerated 300 mg daily"]) is None
    True
    """
    found: set[float] = set()
    for text in texts:
        if not text:
            continue
        found |= {float(m) for m in _PER_DAY.findall(text)}
        found |= {float(m) for m in _ONCE.findall(text)}
        found |= {2 * float(m) for m in _TWICE.findall(text)}
    return found.pop() if len(found) == 1 else None


def disagrees(stated_mg: float | None, structured_mg: float | None) -> bool:
    return stated_mg is not None and structured_mg is not None and not math.isclose(stated_mg, structured_mg)
