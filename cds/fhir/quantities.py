"""Unit handling for FHIR Quantities: cds.units plus the few units it does not list (enzyme activity)."""

from __future__ import annotations

from cds.units import UnitError, convert

# Catalytic activity is not in cds.units; U/L and IU/L are the same for AST/ALT, 1 ukat/L = 60 U/L.
_ENZYME = {"U/L": 1.0, "[IU]/L": 1.0, "IU/L": 1.0, "U/l": 1.0, "u/L": 1.0, "ukat/L": 60.0, "µkat/L": 60.0}
_TABLETS = {"{pill}", "{tbl}", "{tablet}", "{tablets}", "tablet", "tablets", "tab", "tabs", "pill", "pills", "TAB"}
_MG_PER_G = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}


def to_unit(value: float, unit: str | None, target: str, *, molar_mass_g_mol: float | None = None) -> float:
    """``value`` in ``unit`` expressed in ``target``; raises UnitError when that is not possible."""
    if unit is None or not unit.strip():
        raise UnitError(f"no unit given (expected something convertible to {target})")
    if unit.strip() in _ENZYME or target in _ENZYME:
        if unit.strip() not in _ENZYME or target not in _ENZYME:
            raise UnitError(f"cannot convert {unit} to {target}")
        return value * _ENZYME[unit.strip()] / _ENZYME[target]
    return convert(value, unit, target, molar_mass_g_mol=molar_mass_g_mol)


def is_tablet_count(unit: str | None) -> bool:
    """A dose given as a number of tablets (the sandbox sends code '{pill}' and no unit)."""
    return unit is None or unit.strip() in _TABLETS or unit.strip().lower().startswith(("tab", "{tab"))


def mass_mg(value: float, unit: str) -> float | None:
    factor = _MG_PER_G.get(unit.strip())
    return None if factor is None else value * factor
