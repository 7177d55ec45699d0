"""Never silent about lab values: which result is reported unreadable, and how bounds reach the facts."""

from __future__ import annotations

from typing import Any

import pytest

from cds.fhir.body import _highest
from cds.fhir.types import Source
from tests.fhir.helpers import add_observation, clone, example, find, observation, record_of

BASE = "patient-view-neutropenia.json"
PID = "pt-neutro"


def _body() -> dict[str, Any]:
    return clone(example(BASE))


def test_a_newer_unreadable_anc_is_reported_while_the_older_value_is_still_used() -> None:
    body = _body()
    newer = observation("anc-new", PID, "751-8", 0.0, "10*9/L", "2026-11-25T08:00:00Z")
    del newer["valueQuantity"]
    newer["valueString"] = "clotted"
    add_observation(body, newer)
    facts = record_of(body).facts
    assert facts["heme.anc"].value == 0.8  # the older readable count
    assert facts["lab.anc_unreadable"].value == "Result of 25 Nov 2026 08:00 UTC: valueString 'clotted' is not a number"
    assert [str(s) for s in facts["lab.anc_unreadable"].sources] == ["Observation/anc-new (2026-11-25T08:00:00+00:00)"]


def test_an_older_unreadable_anc_is_not_reported_when_a_newer_one_reads() -> None:
    body = _body()
    older = observation("anc-old", PID, "751-8", 0.0, "10*9/L", "2026-11-20T08:00:00Z")
    del older["valueQuantity"]
    older["valueString"] = "clotted"
    add_observation(body, older)
    assert "lab.anc_unreadable" not in record_of(body).facts


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"valueString": "0.8 furlongs"}, "unknown unit"),
        ({"valueQuantity": {"value": 0.8}}, "has no unit"),
        ({"valueQuantity": {"value": 0.8, "unit": "mg"}}, "cannot convert"),
    ],
)
def test_unit_problems_are_unreadable_and_named(value: dict[str, Any], reason: str) -> None:
    body = _body()
    anc = find(body, "Observation", "lab-anc")
    anc.pop("valueQuantity")
    anc.update(value)
    facts = record_of(body).facts
    assert "heme.anc" not in facts
    assert facts["lab.anc_unreadable"].sources[0].id == "lab-anc"
    assert reason in str(facts["lab.anc_unreadable"].value)


def test_a_weight_reported_as_a_bound_is_unreadable() -> None:
    body = _body()
    find(body, "Observation", "wt-1")["valueQuantity"]["comparator"] = ">"
    facts = record_of(body).facts
    assert "patient.weight" not in facts
    assert "reported only as a bound (\\>77.0 kg)" in str(facts["lab.weight_unreadable"].value)  # escaped


def test_a_censored_creatinine_is_kept_as_a_bound_and_not_put_into_cockcroft_gault() -> None:
    body = _body()
    find(body, "Observation", "lab-creat")["valueQuantity"]["comparator"] = "<"
    record = record_of(body)
    assert record.facts["renal.creatinine_censored"].value == "below"
    assert "renal.crcl" not in record.facts
    assert any("Cockcroft-Gault not computed, creatinine reported only as a bound" in w for w in record.warnings)


def test_a_censored_transaminase_makes_the_higher_of_the_two_a_bound() -> None:
    body = _body()
    find(body, "Observation", "lab-alt")["valueQuantity"].update(value=300, comparator=">")
    facts = record_of(body).facts
    assert facts["hepatic.alt_xuln_censored"].value == "above"
    assert facts["hepatic.transaminases_xuln_censored"].value == "above"
    assert "hepatic.odwg_class" in facts  # from bilirubin and AST, both exact


A, B = Source("Observation", "a"), Source("Observation", "b")


@pytest.mark.parametrize(
    ("ratios", "want"),
    [
        ([(2.0, A, None), (3.0, B, None)], (3.0, None, [B])),
        ([(2.0, A, None), (3.0, B, "below")], (3.0, "below", [A, B])),  # max lies in [2, 3)
        ([(4.0, A, None), (3.0, B, "below")], (4.0, None, [A])),
        ([(3.0, A, None), (3.0, B, "below")], (3.0, None, [A])),
        ([(3.0, A, "at-or-below"), (3.0, B, "below")], (3.0, "at-or-below", [A, B])),
        ([(2.0, A, None), (5.0, B, "above")], (5.0, "above", [A, B])),
        ([(6.0, A, None), (5.0, B, "above")], (6.0, "at-or-above", [A, B])),
        ([(6.0, A, "at-or-above"), (6.0, B, "above")], (6.0, "above", [A, B])),
    ],
)
def test_the_higher_of_two_bounded_values(
    ratios: list[tuple[float, Source, str | None]], want: tuple[float, str | None, list[Source]]
) -> None:
    assert _highest(ratios) == want


def test_a_value_element_of_the_wrong_datatype_is_reported_not_dropped() -> None:
    body = _body()
    anc = find(body, "Observation", "lab-anc")
    anc.pop("valueQuantity")
    anc["valueString"] = 0.8  # R4: a string
    facts = record_of(body).facts
    assert "heme.anc" not in facts
    assert (
        facts["lab.anc_unreadable"].value
        == "Result of 24 Nov 2026 08:00 UTC: valueString: expected a non-empty string, got float"
    )
