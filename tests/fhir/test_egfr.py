"""Renal function from eGFR where no CrCl or creatinine is usable (local policy, mapping.yaml egfr_as_crcl)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from cds.fhir import extract_record, fact_values, parse_request
from cds.fhir.settings import RULES_DIR, load_settings
from tests.fhir.helpers import NOW, add_observation, clone, example, find, observation, record_of, values_of

EGFR = "order-sign-new-start-egfr-only.json"


def egfr_body(value: float, *, height: bool = True, code: str = "98979-8") -> dict[str, Any]:
    body = clone(example(EGFR))
    obs = find(body, "Observation", "lab-egfr")
    obs["valueQuantity"]["value"] = value
    obs["code"]["coding"][0]["code"] = code
    if not height:
        entries = body["prefetch"]["observations"]["entry"]
        body["prefetch"]["observations"]["entry"] = [e for e in entries if e["resource"]["id"] != "ht-1"]
    return body


def test_the_example_de_indexes_egfr_by_mosteller_bsa() -> None:
    record = record_of(example(EGFR))
    bsa = math.sqrt(165 * 60 / 3600)
    assert record.facts["patient.bsa"].value == pytest.approx(bsa, abs=1e-4)
    crcl = record.facts["renal.crcl"]
    assert crcl.value == pytest.approx(25 * bsa / 1.73, abs=1e-4)
    assert record.facts["renal.crcl_method"].value == "egfr-bsa"
    assert [s.id for s in crcl.sources] == ["lab-egfr", "wt-1", "ht-1"]
    assert "eGFR 25 mL/min/1.73 m2 x BSA 1.66 m2 / 1.73" in crcl.note


@pytest.mark.parametrize("code", ["98979-8", "33914-3", "62238-1", "77147-7"])
def test_every_egfr_code_of_the_value_set_is_used(code: str) -> None:
    assert values_of(egfr_body(25, code=code))["renal.crcl_method"] == "egfr-bsa"


def test_without_height_egfr_is_used_as_reported() -> None:
    record = record_of(egfr_body(25, height=False))
    assert "patient.bsa" not in record.facts
    assert record.facts["renal.crcl"].value == 25.0
    assert record.facts["renal.crcl_method"].value == "egfr"
    assert "no height or weight for BSA" in record.facts["renal.crcl"].note


def test_de_indexing_can_be_switched_off() -> None:
    settings = replace(load_settings(), egfr_deindex_by_bsa=False)
    values = fact_values(extract_record(parse_request(example(EGFR)), now=NOW, settings=settings))
    assert values["renal.crcl"] == 25.0 and values["renal.crcl_method"] == "egfr"


def test_the_policy_can_be_switched_off() -> None:
    settings = replace(load_settings(), egfr_as_crcl=False)
    values = fact_values(extract_record(parse_request(example(EGFR)), now=NOW, settings=settings))
    assert values["renal.egfr"] == 25.0
    assert "renal.crcl" not in values and "renal.crcl_method" not in values


def test_mapping_yaml_switches_it_on_and_names_its_evidence_level() -> None:
    assert load_settings().egfr_as_crcl and load_settings().egfr_deindex_by_bsa
    text = (RULES_DIR / "mapping.yaml").read_text(encoding="utf-8")
    block = text[text.index("egfr_as_crcl:") :]
    assert "level: local-policy" in block and "§9.1" in block


def test_creatinine_wins_over_egfr() -> None:
    body = clone(example(EGFR))
    add_observation(body, observation("creat", "pt-egfr", "2160-0", 1.0, "mg/dL", "2026-11-24T08:00:00Z"))
    values = values_of(body)
    assert values["renal.crcl_method"] == "cockcroft-gault"
    # (140 - 76) x 60 / (72 x 1.0) x 0.85
    assert values["renal.crcl"] == pytest.approx(64 * 60 / 72 * 0.85, abs=1e-3)


def test_measured_crcl_wins_over_egfr() -> None:
    body = clone(example(EGFR))
    add_observation(body, observation("crcl", "pt-egfr", "2164-2", 52, "mL/min", "2026-11-24T08:00:00Z"))
    values = values_of(body)
    assert values["renal.crcl"] == 52.0 and values["renal.crcl_method"] == "measured"


def test_creatinine_without_weight_falls_back_to_egfr_as_reported() -> None:
    """Cockcroft-Gault needs weight; with none, eGFR is the only renal function left (and cannot be de-indexed)."""
    body = clone(example(EGFR))
    add_observation(body, observation("creat", "pt-egfr", "2160-0", 1.0, "mg/dL", "2026-11-24T08:00:00Z"))
    entries = body["prefetch"]["observations"]["entry"]
    body["prefetch"]["observations"]["entry"] = [e for e in entries if e["resource"]["id"] != "wt-1"]
    record = record_of(body)
    assert record.facts["renal.crcl_method"].value == "egfr"
    assert any("Cockcroft-Gault not computed" in w for w in record.warnings)


def test_an_old_egfr_is_not_used() -> None:
    body = clone(example(EGFR))
    find(body, "Observation", "lab-egfr")["effectiveDateTime"] = "2026-11-01T08:00:00Z"
    values = values_of(body)
    assert "renal.egfr" not in values and "renal.crcl" not in values
