"""Unit conversions and derived values against hand-computed numbers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from cds.fhir import extract_record, fact_values, parse_request
from cds.fhir.derive import age_years, cockcroft_gault, mosteller_bsa, odwg_class
from cds.fhir.quantities import is_tablet_count, to_unit
from cds.fhir.settings import load_settings
from cds.units import UnitError
from tests.fhir.helpers import NOW, add_observation, clone, example, find, observation, record_of, values_of

BASE = "order-sign-new-start-moderate-renal.json"


@pytest.mark.parametrize(
    ("value", "unit", "target", "molar", "expected"),
    [
        pytest.param(165, "lb", "kg", None, 74.8427, id="lb"),
        pytest.param(165, "[lb_av]", "kg", None, 74.8427, id="lb_av"),
        pytest.param(69, "[in_i]", "cm", None, 175.26, id="inch"),
        pytest.param(88.4, "umol/L", "mg/dL", 113.12, 0.99998, id="creatinine-88.4"),
        pytest.param(2.5, "umol/L", "ng/mL", 493.6, 1234.0, id="imatinib-umol"),
        pytest.param(1.234, "mg/L", "ng/mL", None, 1234.0, id="imatinib-mg-l"),
        pytest.param(1234, "ug/L", "ng/mL", None, 1234.0, id="imatinib-ug-l"),
        pytest.param(2900, "/uL", "10*9/L", None, 2.9, id="anc-per-ul"),
        pytest.param(2.9, "10*3/uL", "10*9/L", None, 2.9, id="anc-k-ul"),
        pytest.param(17.1, "umol/L", "mg/dL", 584.66, 0.99977, id="bilirubin"),
        pytest.param(1.0, "ukat/L", "U/L", None, 60.0, id="enzyme-ukat"),
        pytest.param(40, "[IU]/L", "U/L", None, 40.0, id="enzyme-iu"),
    ],
)
def test_conversions(value: float, unit: str, target: str, molar: float | None, expected: float) -> None:
    assert to_unit(value, unit, target, molar_mass_g_mol=molar) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("unit", "target"), [("mg/dL", "U/L"), (None, "kg"), ("kg", "cm"), ("umol/L", "ng/mL")])
def test_impossible_conversions_raise(unit: str | None, target: str) -> None:
    with pytest.raises(UnitError):
        to_unit(1.0, unit, target)


def test_tablet_units() -> None:
    assert is_tablet_count("{pill}") and is_tablet_count(None) and is_tablet_count("tablet")
    assert not is_tablet_count("mg")


def test_cockcroft_gault_hand_computed() -> None:
    # (140 - 68) x 70 / (72 x 2.0) = 35.0; female x 0.85
    assert cockcroft_gault(68, 70, 2.0, "male") == pytest.approx(35.0)
    assert cockcroft_gault(68, 70, 2.0, "female") == pytest.approx(29.75)
    # (140 - 72) x 74.8427 x 0.85 / (72 x 150/88.4) = 4325.90 / 122.172 = 35.408
    assert cockcroft_gault(72, 74.8427, 150 / 88.4, "female") == pytest.approx(35.408, rel=1e-4)
    with pytest.raises(ValueError):
        cockcroft_gault(50, 70, 1.0, "unknown")


def test_bsa_age_and_odwg() -> None:
    assert mosteller_bsa(70, 175) == pytest.approx(1.8447, rel=1e-4)
    assert age_years(date(1958, 11, 26), date(2026, 11, 25)) == 67
    assert age_years(date(1958, 11, 25), date(2026, 11, 25)) == 68
    assert odwg_class(3.5, None) == "severe"
    assert odwg_class(2.0, 0.5) == "moderate"
    assert odwg_class(1.2, 0.5) == "mild"
    assert odwg_class(0.8, 1.5) == "mild"
    assert odwg_class(0.8, 0.9) == "normal"
    assert odwg_class(0.8, None) is None


def test_creatinine_in_umol_and_mg_give_the_same_crcl() -> None:
    mg = values_of(example(BASE))
    body = clone(example(BASE))
    creat = find(body, "Observation", "lab-creat")
    creat["code"]["coding"][0]["code"] = "14682-9"
    creat["valueQuantity"] = {"value": 176.8, "unit": "umol/L", "system": "http://unitsofmeasure.org", "code": "umol/L"}
    del creat["referenceRange"]
    umol = values_of(body)
    assert mg["renal.crcl"] == pytest.approx(35.0)
    assert umol["renal.crcl"] == pytest.approx(mg["renal.crcl"], rel=1e-4)
    assert umol["renal.crcl_method"] == "cockcroft-gault"


def test_egfr_is_kept_apart_and_not_used_as_crcl_when_the_policy_is_off() -> None:
    body = clone(example("order-sign-missing-creatinine.json"))
    add_observation(body, observation("egfr", "pt-nocreat", "98979-8", 38, "mL/min/1.73m2", "2026-11-24T08:00:00Z"))
    off = replace(load_settings(), egfr_as_crcl=False)
    values = fact_values(extract_record(parse_request(body), now=NOW, settings=off))
    assert values["renal.egfr"] == 38.0
    assert "renal.crcl" not in values


def test_measured_crcl_wins_over_cockcroft_gault() -> None:
    body = clone(example(BASE))
    add_observation(body, observation("crcl", "pt-renal", "2164-2", 52, "mL/min", "2026-11-24T08:00:00Z"))
    values = values_of(body)
    assert values["renal.crcl"] == 52.0 and values["renal.crcl_method"] == "measured"


def test_uln_falls_back_to_the_local_table() -> None:
    body = clone(example(BASE))
    del find(body, "Observation", "lab-bili")["referenceRange"]
    values = values_of(body)
    assert values["hepatic.bilirubin_xuln"] == pytest.approx(0.6 / 1.2)


def test_weight_in_lb_and_level_in_umol() -> None:
    values = values_of(example("order-sign-units-umol-lb.json"))
    assert values["patient.weight"] == pytest.approx(74.8427, rel=1e-4)
    assert values["level.conc"] == pytest.approx(1234.0)
    assert values["heme.anc"] == pytest.approx(2.9)
    assert values["hepatic.bilirubin_xuln"] == pytest.approx(12 / 21)


def test_a_converted_result_keeps_what_the_laboratory_wrote() -> None:
    """Cards quote the number as the laboratory reported it beside the converted one (issue 14 review)."""
    facts = record_of(example("order-sign-units-umol-lb.json")).facts
    assert facts["level.conc"].reported == "2.5 umol/L"  # 1234 ng/mL
    assert facts["heme.anc"].reported == "2900 /uL"  # 2.9 x10^9/L
    plain = record_of(example("patient-view-low-trough-cml.json")).facts
    assert plain["level.conc"].reported == ""  # sent in ng/mL: nothing to add
