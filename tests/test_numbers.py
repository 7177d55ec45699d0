"""Numbers written for people: parsed back, the text is the value within the rounding it states."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cds.engine.policy import Policy
from cds.engine.render import format_value, render
from cds.numbers import decimals_for, format_number

finite = st.floats(allow_nan=False, allow_infinity=False)


def _within_rounding(text: str, value: float) -> bool:
    half_step = Decimal(5) * Decimal(10) ** -(decimals_for(value) + 1)
    return abs(Decimal(text) - Decimal(value)) <= half_step


@given(finite)
@example(659.96)
@example(999.7)
@example(100.2)
@example(99.996)
@example(9.9996)
@example(0.0999)
@example(5e-324)
@example(1e300)
def test_rendered_number_parses_back_within_its_rounding(value: float) -> None:
    text = format_number(value)
    assert "e" not in text.lower()
    assert _within_rounding(text, value)


@given(finite)
def test_rendering_keeps_the_sign_and_the_whole_number_part(value: float) -> None:
    text = format_number(value)
    if abs(value) >= 1:
        assert text.lstrip("-").split(".")[0] in {str(int(abs(value))), str(int(abs(value)) + 1)}
        assert text.startswith("-") == (value < 0)


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_whole_numbers_are_written_exactly(value: int) -> None:
    assert format_value(value) == str(value)
    if abs(value) < 2**53:
        assert format_number(float(value)) == str(value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (659.96, "660"),
        (999.7, "1000"),
        (100.2, "100"),
        (660.0, "660"),
        (12.04, "12"),
        (12.05, "12.1"),
        (1.5, "1.5"),
        (0.35, "0.35"),
        (0.0043, "0.0043"),
        (1e6, "1000000"),
        (-2.5, "-2.5"),
        (-0.0001, "-0.0001"),
    ],
)
def test_known_values(value: float, shown: str) -> None:
    assert format_number(value) == shown


def test_non_finite_values_are_named_not_printed_as_numbers() -> None:
    assert format_number(math.nan) == "not a number"
    assert format_number(math.inf) == "infinite"


@given(finite)
def test_card_template_shows_the_fact_it_names(value: float) -> None:
    text = render("Imatinib trough {level.conc} ng/mL", {"level.conc": value}, Policy("test", "1", "none", {}))
    number = text.removeprefix("Imatinib trough ").removesuffix(" ng/mL")
    assert _within_rounding(number, value)


def test_the_reported_trough_of_660_reads_660() -> None:
    assert render("Imatinib trough {level.conc} ng/mL", {"level.conc": 659.96}, Policy("test", "1", "none", {})) == (
        "Imatinib trough 660 ng/mL"
    )
