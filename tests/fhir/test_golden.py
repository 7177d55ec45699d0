"""Every fhir_examples request maps without error to the stored facts in tests/fhir/golden/.

Regenerate after an intended change with:
    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/fhir/test_golden.py
and review the diff of tests/fhir/golden/ before committing.
"""

from __future__ import annotations

import json
import os

import pytest

from cds.cli.facts import record_json
from tests.fhir.helpers import EXAMPLES, GOLDEN, example, record_of

NAMES = sorted(p.name for p in EXAMPLES.glob("*.json"))


def test_at_least_fifteen_examples() -> None:
    assert len(NAMES) >= 15


@pytest.mark.parametrize("name", NAMES)
def test_example_matches_golden(name: str) -> None:
    got = record_json(record_of(example(name)))
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_example_is_a_cds_hooks_2_request(name: str) -> None:
    body = example(name)
    assert body["hook"] in ("patient-view", "order-select", "order-sign")
    assert len(body["hookInstance"]) == 36 and body["fhirServer"].startswith("https://")
    assert {"patient", "conditions", "medications", "observations"} <= set(body["prefetch"])


KEY_FACTS = {
    "order-sign-new-start-moderate-renal.json": {"regimen.new_start": True, "renal.crcl": 35.0},
    "order-sign-rifampin-coprescribed.json": {"comed.strong_cyp3a4_inducer": True, "comed.inducer_name": "rifampin"},
    "order-sign-severe-hepatic-impairment.json": {"hepatic.odwg_class": "severe", "dx.indication": "GIST"},
    "order-sign-hepatotoxicity-on-treatment.json": {"hepatic.alt_xuln": 6.1463, "regimen.new_start": False},
    "patient-view-neutropenia.json": {"heme.anc": 0.8, "dx.cml_phase": "chronic"},
    "patient-view-low-trough-cml.json": {"level.conc": 620.0, "level.hours_after_dose": 23.5},
    "patient-view-random-level-3h-after-dose.json": {"level.hours_after_dose": 3.0, "level.hours_from_trough": -21.0},
    "patient-view-gist-high-trough-oedema.json": {"ae.fluid_retention_grade": 2.0, "patient.weight_gain_7d": 2.5},
    "order-sign-units-umol-lb.json": {"level.conc": 1234.0, "patient.weight": 74.8427},
    "order-select-imatinib-selected.json": {"regimen.daily_mg": 600.0, "dx.cml_phase": "accelerated"},
    "order-sign-twice-daily-800mg.json": {"regimen.daily_mg": 800.0, "regimen.interval_h": 12.0},
    "order-sign-split-600mg-moderate-renal.json": {"regimen.daily_mg": 600.0, "regimen.draft_count": 2.0},
    "order-sign-renewal-with-active-order.json": {"regimen.daily_mg": 400.0, "regimen.days_on_dose": 197.5},
    "order-sign-new-start-egfr-only.json": {"renal.crcl": 23.964, "renal.crcl_method": "egfr-bsa"},
}


@pytest.mark.parametrize("name", sorted(KEY_FACTS))
def test_key_facts(name: str) -> None:
    facts = record_json(record_of(example(name)))["facts"]
    for fact, expected in KEY_FACTS[name].items():
        if isinstance(expected, float):
            assert facts[fact]["value"] == pytest.approx(expected, abs=1e-3), fact
        else:
            assert facts[fact]["value"] == expected, fact


def test_missing_creatinine_leaves_renal_facts_out() -> None:
    facts = record_json(record_of(example("order-sign-missing-creatinine.json")))["facts"]
    assert not any(name.startswith("renal.") for name in facts)


def test_non_imatinib_order_has_no_regimen() -> None:
    record = record_of(example("order-sign-non-imatinib-order.json"))
    assert record.draft_orders == () and record.dose_source == "none"
    assert not any(name.startswith(("regimen.", "level.")) for name in record.facts)


def test_no_bundle_type_is_a_warning() -> None:
    record = record_of(example("order-sign-no-bundle-type.json"))
    assert any("Bundle without 'type'" in w for w in record.warnings)
    assert record.facts["regimen.daily_mg"].value == 400.0


def test_tdm_due_example_has_no_level() -> None:
    record = record_of(example("patient-view-tdm-due.json"))
    assert record.levels == () and record.facts["regimen.days_on_therapy"].value > 29
