"""Unit conversion against hand-computed values."""

from __future__ import annotations

import pytest

from cds.units import UnitError, canonical_unit, convert, parse_quantity


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        (150, "[lb_av]", "kg", 68.0388555),
        (0.8, "mL/s", "mL/min", 48.0),
        (6, "L/h", "mL/min", 100.0),
        (1.5, "mg/L", "ng/mL", 1500.0),
        (1000, "ug/L", "ng/mL", 1000.0),
        (4500, "/uL", "10*9/L", 4.5),
        (150, "10*3/uL", "10*9/L", 150.0),
        (2, "d", "h", 48.0),
        (72, "in", "cm", 182.88),
        (50, "%", "1", 0.5),
    ],
)
def test_convert(value: float, src: str, dst: str, expected: float) -> None:
    assert convert(value, src, dst) == pytest.approx(expected, rel=1e-9)


def test_molar_conversions_need_and_use_the_molar_mass() -> None:
    assert convert(2.026, "umol/L", "ng/mL", molar_mass_g_mol=493.6) == pytest.approx(1000.0, rel=1e-3)
    assert convert(88.4, "umol/L", "mg/dL", molar_mass_g_mol=10000 / 88.4) == pytest.approx(1.0)
    with pytest.raises(UnitError, match="molar mass"):
        convert(1, "umol/L", "ng/mL")


def test_egfr_is_never_converted_to_clearance() -> None:
    assert canonical_unit("mL/min/1.73m2") == "mL/min/{1.73_m2}"
    with pytest.raises(UnitError):
        convert(60, "mL/min/{1.73_m2}", "mL/min")


@pytest.mark.parametrize("text", ["forty mL/min", "40 furlongs", "nan mL/min", ""])
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_quantity(text)
