"""Numbers written for people: cards, the explanation page, CLI tables and messages.

One rule everywhere: the whole-number part is always written in full (659.96 is "660", never "66"),
decimals follow the size of the number, trailing zeros after the decimal point are dropped, and there
is never an exponent (1e6 mg/day is "1000000", not "1e+06").
"""

from __future__ import annotations

import math


def decimals_for(value: float) -> int:
    """Decimals shown: none from 100 up, one from 10, two below that, and two significant digits below 0.1.

    >>> [decimals_for(v) for v in (659.96, 42.5, 1.25, 0.35, 0.0043)]
    [0, 1, 2, 2, 4]
    """
    size = abs(value)
    if size >= 100:
        return 0
    if size >= 10:
        return 1
    if size >= 0.1 or size == 0:
        return 2
    return 1 - math.floor(math.log10(size))


def format_number(value: float) -> str:
    """``value`` rounded to ``decimals_for(value)`` places, without trailing zeros after the point.

    >>> [format_number(v) for v in (659.96, 999.7, 100.2, 12.04, 0.0043, 400.0, -0.0)]
    ['660', '1000', '100', '12', '0.0043', '400', '0']
    """
    if not math.isfinite(value):
        return "not a number" if math.isnan(value) else ("infinite" if value > 0 else "minus infinite")
    text = f"{value:.{decimals_for(value)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
