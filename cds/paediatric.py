"""The label's paediatric dose for a child's body surface area, for the scope rules to show (no rule does arithmetic).

Set only for patients younger than ``policy.adult_min_age`` with a body surface area; both values are capped at
``policy.paediatric_max_daily_mg`` and rounded to whole mg (rounding to tablets is the prescriber's decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds.engine.policy import Policy


def paediatric_facts(facts: Mapping[str, Any], policy: Policy) -> dict[str, float | bool]:
    age, bsa = _number(facts.get("patient.age")), _number(facts.get("patient.bsa"))
    if age is None or bsa is None or "adult_min_age" not in policy.parameters:
        return {}
    if age >= policy.quantity("adult_min_age").value:
        return {}
    cap = policy.quantity("paediatric_max_daily_mg").value
    label = float(round(min(float(policy.get("paediatric_mg_per_m2")) * bsa, cap)))
    found: dict[str, float | bool] = {
        "paediatric.label_daily_mg": label,
        "paediatric.earlier_label_daily_mg": float(
            round(min(float(policy.get("paediatric_earlier_mg_per_m2")) * bsa, cap))
        ),
    }
    ordered = _number(facts.get("regimen.daily_mg"))
    if ordered is not None:
        found["paediatric.above_label_dose"] = ordered > label
    return found


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
