"""The rewritten draft order: the new dose, and the prescriber's product, start date and clock times kept."""

from __future__ import annotations

from typing import Any

import pytest

from cds.cards.orders import RXNORM, TABLET_100, TABLET_400, rewrite_dose


def draft(tablet: dict[str, str], tablets: int, times: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "rx-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [dict(tablet)]},
        "subject": {"reference": "Patient/pt-1"},
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "boundsPeriod": {"start": "2026-11-26"},
                        "frequency": len(times),
                        "period": 1,
                        "periodUnit": "d",
                        "timeOfDay": times,
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet", "code": "{tablet}"}}],
            }
        ],
    }


def codes(order: dict[str, Any]) -> list[str]:
    return [c["code"] for c in order["medicationCodeableConcept"]["coding"] if c["system"] == RXNORM]


def repeat(order: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = order["dosageInstruction"][0]["timing"]["repeat"]
    return found


@pytest.mark.parametrize(("daily", "interval"), [(400, 24), (300, 24), (200, 24), (800, 12)])
def test_100_mg_tablets_stay_100_mg_tablets(daily: int, interval: int) -> None:
    rewritten = rewrite_dose(draft(TABLET_100, 6, ["08:00:00"]), daily, interval)
    assert codes(rewritten) == [TABLET_100["code"]]


def test_a_400_mg_tablet_order_changes_product_only_when_the_dose_needs_it() -> None:
    assert codes(rewrite_dose(draft(TABLET_400, 1, ["08:00:00"]), 800, 12)) == [TABLET_400["code"]]
    assert codes(rewrite_dose(draft(TABLET_400, 1, ["08:00:00"]), 300, 24)) == [TABLET_100["code"]]


def test_start_date_and_clock_time_are_kept_while_the_doses_a_day_stay() -> None:
    rewritten = rewrite_dose(draft(TABLET_100, 4, ["20:00:00"]), 200, 24)
    assert repeat(rewritten) == {
        "frequency": 1,
        "period": 1,
        "periodUnit": "d",
        "boundsPeriod": {"start": "2026-11-26"},
        "timeOfDay": ["20:00:00"],
    }
    assert rewritten["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": 200,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }


def test_a_change_to_twice_daily_drops_the_single_clock_time_but_keeps_the_start() -> None:
    rewritten = rewrite_dose(draft(TABLET_400, 1, ["08:00:00"]), 800, 12)
    assert "timeOfDay" not in repeat(rewritten)
    assert repeat(rewritten)["boundsPeriod"] == {"start": "2026-11-26"}
    assert repeat(rewritten)["frequency"] == 2
