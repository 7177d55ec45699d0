"""Values computed from other facts: age, Cockcroft-Gault CrCl, Mosteller BSA, NCI-ODWG hepatic class."""

from __future__ import annotations

import math
from datetime import date


def age_years(birth: date, on: date) -> int:
    """Completed years of age on ``on``."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def cockcroft_gault(age: float, weight_kg: float, creatinine_mg_dl: float, sex: str) -> float:
    """CrCl in mL/min = (140 - age) x weight / (72 x SCr), x 0.85 for women (Cockcroft & Gault 1976).

    >>> round(cockcroft_gault(60, 72, 1.0, "male"), 1)
    80.0
    """
    if sex not in ("male", "female"):
        raise ValueError(f"Cockcroft-Gault needs sex male or female, got {sex!r}")
    crcl = (140 - age) * weight_kg / (72 * creatinine_mg_dl)
    return crcl * 0.85 if sex == "female" else crcl


def mosteller_bsa(weight_kg: float, height_cm: float) -> float:
    """Body surface area in m2 = sqrt(height[cm] x weight[kg] / 3600) (Mosteller 1987)."""
    return math.sqrt(height_cm * weight_kg / 3600)


def odwg_class(bilirubin_xuln: float | None, ast_xuln: float | None) -> str | None:
    """NCI-ODWG class (clinical-rules.md §5.2); None when the data cannot decide it."""
    if bilirubin_xuln is None:
        return None
    if bilirubin_xuln > 3:
        return "severe"
    if bilirubin_xuln > 1.5:
        return "moderate"
    if bilirubin_xuln > 1:
        return "mild"
    if ast_xuln is None:
        return None
    return "mild" if ast_xuln > 1 else "normal"
