"""Dates written for people, as cards and card facts show them: "5 Mar 2026", "5 Mar 2026 08:30"."""

from __future__ import annotations

from datetime import datetime


def day(when: datetime) -> str:
    """ "5 Mar 2026": no leading zero.

    >>> day(datetime(2026, 3, 5, 8, 30))
    '5 Mar 2026'
    """
    return when.strftime("%d %b %Y").lstrip("0")


def day_and_time(when: datetime) -> str:
    """ "5 Mar 2026 08:30" (the clock time keeps its zero).

    >>> day_and_time(datetime(2026, 3, 5, 8, 30))
    '5 Mar 2026 08:30'
    """
    return when.strftime("%d %b %Y %H:%M").lstrip("0")
