"""UCUM units the rules and the FHIR mapper meet, with exact conversion factors.

Only the units this service needs are listed: an unknown unit is an error, never a guess. Molar
concentrations convert to mass concentrations only with the substance's molar mass (given per fact in
rules/facts.yaml), because umol/L -> ng/mL depends on the molecule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, float]] = {
    # mass (base g)
    "kg": ("mass", 1000.0),
    "g": ("mass", 1.0),
    "mg": ("mass", 1e-3),
    "ug": ("mass", 1e-6),
    "ng": ("mass", 1e-9),
    "[lb_av]": ("mass", 453.59237),
    # length (base m)
    "m": ("length", 1.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "[in_i]": ("length", 0.0254),
    # area (base m2)
    "m2": ("area", 1.0),
    "cm2": ("area", 1e-4),
    # time (base h); month and year as UCUM's mean Julian values
    "s": ("time", 1 / 3600),
    "min": ("time", 1 / 60),
    "h": ("time", 1.0),
    "d": ("time", 24.0),
    "wk": ("time", 168.0),
    "mo": ("time", 730.5),
    "a": ("time", 8766.0),
    # clearance (base mL/min)
    "mL/min": ("flow", 1.0),
    "mL/s": ("flow", 60.0),
    "mL/h": ("flow", 1 / 60),
    "L/h": ("flow", 1000 / 60),
    "L/min": ("flow", 1000.0),
    # clearance normalised to 1.73 m2 body surface: a different quantity, never converted to mL/min
    "mL/min/{1.73_m2}": ("flow_per_bsa", 1.0),
    # mass concentration (base ng/mL == ug/L)
    "ng/mL": ("mass_conc", 1.0),
    "ug/L": ("mass_conc", 1.0),
    "ng/L": ("mass_conc", 1e-3),
    "ug/mL": ("mass_conc", 1000.0),
    "mg/L": ("mass_conc", 1000.0),
    "mg/dL": ("mass_conc", 10000.0),
    "g/L": ("mass_conc", 1e6),
    "g/dL": ("mass_conc", 1e7),
    # substance concentration (base umol/L)
    "umol/L": ("molar_conc", 1.0),
    "nmol/L": ("molar_conc", 1e-3),
    "mmol/L": ("molar_conc", 1000.0),
    # number concentration (base 10*9/L)
    "10*9/L": ("count_conc", 1.0),
    "10*3/uL": ("count_conc", 1.0),
    "10*3/mm3": ("count_conc", 1.0),
    "10*6/mL": ("count_conc", 1.0),
    "/uL": ("count_conc", 1e-3),
    "/mm3": ("count_conc", 1e-3),
    "/L": ("count_conc", 1e-9),
    # dimensionless (ratios such as multiples of ULN, probabilities)
    "1": ("ratio", 1.0),
    "%": ("ratio", 0.01),
}

# Spellings seen in real resources that mean a listed UCUM unit.
_ALIASES = {
    "mL/min/1.73m2": "mL/min/{1.73_m2}",
    "mL/min/1.73 m2": "mL/min/{1.73_m2}",
    "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "mcg/L": "ug/L",
    "µg/L": "ug/L",
    "µmol/L": "umol/L",
    "μmol/L": "umol/L",
    "mcmol/L": "umol/L",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "in": "[in_i]",
    "10^9/L": "10*9/L",
    "x10^9/L": "10*9/L",
    "10*9/l": "10*9/L",
    "K/uL": "10*3/uL",
    "10^3/uL": "10*3/uL",
    "ml/min": "mL/min",
    "mg/dl": "mg/dL",
    "ng/ml": "ng/mL",
    "mg/l": "mg/L",
    "umol/l": "umol/L",
    "yr": "a",
    "y": "a",
    "years": "a",
    "day": "d",
    "days": "d",
    "hour": "h",
    "hours": "h",
    "x": "1",
    "{ratio}": "1",
    "x ULN": "1",
    "xULN": "1",
}


class UnitError(ValueError):
    """A unit that is unknown or cannot be converted to the requested one."""


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str


def canonical_unit(unit: str) -> str:
    """The listed UCUM spelling of ``unit``; raises UnitError when it is not known."""
    text = unit.strip()
    text = _ALIASES.get(text, text)
    if text not in _UNITS:
        raise UnitError(f"unknown unit {unit!r}")
    return text


def dimension(unit: str) -> str:
    return _UNITS[canonical_unit(unit)][0]


def convert(value: float, from_unit: str, to_unit: str, *, molar_mass_g_mol: float | None = None) -> float:
    """Convert ``value`` between units; molar <-> mass concentration needs ``molar_mass_g_mol``.

    >>> round(convert(88.4, "umol/L", "mg/dL", molar_mass_g_mol=10000 / 88.4), 6)
    1.0
    >>> convert(2, "umol/L", "ng/mL", molar_mass_g_mol=493.6)
    987.2
    """
    src_dim, src_factor = _UNITS[canonical_unit(from_unit)]
    dst_dim, dst_factor = _UNITS[canonical_unit(to_unit)]
    if src_dim == dst_dim:
        return value * src_factor / dst_factor
    if {src_dim, dst_dim} == {"molar_conc", "mass_conc"}:
        if molar_mass_g_mol is None:
            raise UnitError(f"cannot convert {from_unit} to {to_unit} without the molar mass")
        # umol/L x g/mol = ug/L = ng/mL (the mass_conc base unit)
        if src_dim == "molar_conc":
            return value * src_factor * molar_mass_g_mol / dst_factor
        return value * src_factor / molar_mass_g_mol / dst_factor
    raise UnitError(f"cannot convert {from_unit} ({src_dim}) to {to_unit} ({dst_dim})")


def convertible(from_unit: str, to_unit: str, *, molar_mass_g_mol: float | None = None) -> bool:
    try:
        convert(1.0, from_unit, to_unit, molar_mass_g_mol=molar_mass_g_mol)
    except UnitError:
        return False
    return True


_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def parse_quantity(text: str) -> Quantity:
    """Parse ``"40 mL/min"`` or ``"1.5"`` (dimensionless) into a Quantity with a canonical unit."""
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"not a quantity: {text!r} (expected a number and a unit, e.g. '40 mL/min')")
    value = float(match.group(1))
    if not math.isfinite(value):
        raise UnitError(f"not a finite number: {text!r}")
    return Quantity(value, canonical_unit(match.group(2) or "1"))
