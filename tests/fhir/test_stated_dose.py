"""The daily dose an order's text states (cds/fhir/stated_dose.py): explicit forms only, one value or none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds.cards.orders import rewrite_dose
from cds.fhir.stated_dose import disagrees, stated_daily_mg


@pytest.mark.parametrize(
    ("texts", "daily"),
    [
        (["imatinib 100 MG Oral Tablet - 600 mg once daily: 6 x 100 mg tablets"], 600.0),
        (["300 mg twice daily (600 mg/day): 3 x 100 mg tablets per dose"], 600.0),
        (["400 mg daily with food"], 400.0),
        (["400mg QD"], 400.0),
        (["200 mg BID"], 400.0),
        (["800 mg per day"], 800.0),
        (["imatinib 400 MG Oral Tablet", "1 tablet(s) by mouth once daily with food"], None),  # no mg in the sig
        (["imatinib 400 MG Oral Tablet"], None),  # a strength is not a dose
        (["400 mg daily; if not tolerated 300 mg daily"], None),  # two doses: states nothing
        ([None, ""], None),
    ],
)
def test_explicit_daily_doses_are_read(texts: list[str | None], daily: float | None) -> None:
    assert stated_daily_mg(texts) == daily


def test_text_and_fields_disagree_only_when_both_are_known_and_differ() -> None:
    assert disagrees(600.0, 100.0)
    assert not disagrees(600.0, 600.0)
    assert not disagrees(None, 100.0) and not disagrees(600.0, None)


@given(st.integers(min_value=1, max_value=8).map(lambda n: n * 100), st.sampled_from([24, 12]))
def test_the_order_the_cards_write_reads_back(daily: int, interval_h: int) -> None:
    """Whatever dose a suggestion writes, its texts state exactly that dose (so IMA-REGIMEN-020 stays silent on an
    order accepted in full and speaks on one accepted in part)."""
    draft = {"resourceType": "MedicationRequest", "id": "d", "medicationCodeableConcept": {"text": "imatinib"}}
    order = rewrite_dose(draft, float(daily), interval_h)
    texts = [order["medicationCodeableConcept"]["text"], *(d.get("text") for d in order["dosageInstruction"])]
    assert stated_daily_mg(texts) == daily
