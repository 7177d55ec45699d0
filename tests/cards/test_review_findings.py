"""Misses of the independent pharmacist review of issue 14 (requests written from the reference alone, kept in
tests/cards/review/), each a test on the cards the clinician sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cds.pipeline import Outcome, Pipeline
from tests.conftest import ROOT

REVIEW = ROOT / "tests" / "cards" / "review"
REVIEWED_AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def run(pipeline: Pipeline, name: str) -> Outcome:
    return pipeline.run(json.loads((REVIEW / f"{name}.json").read_text(encoding="utf-8")), now=REVIEWED_AT)


def only_card(outcome: Outcome) -> dict[str, Any]:
    (card,) = outcome.cards
    return card


def test_a_sixty_day_old_low_trough_asks_for_a_current_trough_not_a_dose_change(pipeline: Pipeline) -> None:
    """r09: 'consider 600 mg/day' from a level of 25 Sep, while the level card itself was hidden as too old."""
    outcome = run(pipeline, "r09-pv-cml-level-60-days-old")
    assert outcome.decision.dose.action == "none"
    card = only_card(outcome)
    assert "below the CML target" in card["summary"]
    assert "drawn 60 days ago: no dose change on it; draw a current trough" in card["detail"]
    assert "(25 Sep 2026 08:30)" in card["detail"]  # the level's date is on the card
    assert [s["label"] for s in card["suggestions"]] == ["Draw a current trough"]


def test_an_on_target_trough_from_before_rifampin_is_not_called_on_target(pipeline: Pipeline) -> None:
    """r02: 'reaches the CML target' beside 'raise to 600 mg', the level having been drawn before rifampin."""
    outcome = run(pipeline, "r02-os-cml-trough-before-rifampin")
    assert (outcome.decision.dose.action, outcome.decision.dose.daily_mg) == ("change", 600)
    card = only_card(outcome)
    assert "on target before rifampin began, does not show its effect" in card["detail"]
    assert "reaches the CML target" not in card["detail"]


def test_the_renal_start_and_the_inducer_show_how_they_add_up(pipeline: Pipeline) -> None:
    """r05: a summary about 50% of the start beside a 300 mg suggestion, the inducer below two level lines."""
    card = only_card(run(pipeline, "r05-os-newstart-renal-carbamazepine"))
    findings = [line for line in card["detail"].splitlines() if line.startswith("- ")]
    assert findings[0].startswith("- Strong CYP3A4 inducer carbamazepine")  # what the dose came from comes first
    assert "**Recommended dose:** 300 mg once daily: 3 x 100 mg tablets (400 mg/day x 0.5 x 1.5)." in card["detail"]
    level_lines = [line for line in findings if line.startswith("- Imatinib level recommended")]
    assert len(level_lines) == 1, findings  # one level, two reasons
    assert "CYP3A4 interacting drug" in level_lines[0] and "renal impairment" in level_lines[0]


def test_a_level_in_umol_per_litre_is_quoted_as_the_laboratory_wrote_it(pipeline: Pipeline) -> None:
    """r11: 1.3 umol/L shown only as 642 ng/mL, labelled 'as reported'."""
    card = only_card(run(pipeline, "r11-os-cml-trough-umol"))
    assert "- Imatinib level (laboratory): 642 ng/mL (reported as 1.3 umol/L; 20 Nov 2026 08:30)" in card["detail"]


def test_an_escalation_summary_quotes_the_trough_and_how_it_was_obtained(pipeline: Pipeline) -> None:
    """r01: 'below the trough target on 400 mg/day: consider 600 mg/day' without the level."""
    card = only_card(run(pipeline, "r01-os-cml-low-trough-renewal"))
    assert card["summary"].startswith("Chronic-phase CML trough 637 ng/mL (corrected for sampling time) below target")


def test_a_measured_trough_outside_the_model_domain_is_used_without_asking_for_another(pipeline: Pipeline) -> None:
    """r06: a 130 kg patient (the model was built on 44-110 kg) with a measured trough was told to draw one."""
    request = json.loads((REVIEW / "r01-os-cml-low-trough-renewal.json").read_text(encoding="utf-8"))
    for entry in request["prefetch"]["observations"]["entry"]:
        if entry["resource"]["code"]["coding"][0]["code"] == "29463-7":  # body weight
            entry["resource"]["valueQuantity"]["value"] = 130.0
    outcome = pipeline.run(request, now=REVIEWED_AT)
    fired = set(outcome.decision.fired_ids)
    assert {"IMA-TROUGH-006", "IMA-TROUGH-007"} <= fired
    assert not {"IMA-TROUGH-004", "IMA-DOSE-050", "IMA-TROUGH-041"} & fired
    card = only_card(outcome)
    assert "draw a timed trough" not in card["detail"] and "PK model: reaching the target" not in card["detail"]
    assert [s["label"] for s in card["suggestions"]] == ["Change to 600 mg once daily: 6 x 100 mg tablets"]


def test_an_inducer_drafted_without_a_creatinine_is_advised_against(pipeline: Pipeline) -> None:
    """Second review, r05: carbamazepine drafted beside an on-target trough from before it, no creatinine on
    record: no card said to avoid it. Its name is one key fact, not two."""
    outcome = run(pipeline, "r16-05-os-carbamazepine-drafted-no-creatinine")
    assert "IMA-CYP-014" in outcome.decision.fired_ids
    (inducer,) = [c for c in outcome.cards if "carbamazepine: avoid" in c["summary"]]
    assert inducer["indicator"] == "warning"
    assert inducer["detail"].count("carbamazepine (") == 1  # one key-fact line for the drug


def test_a_computed_creatinine_clearance_says_how_and_from_which_result(pipeline: Pipeline) -> None:
    """Second review, r03: "Creatinine clearance: 28.7 mL/min" dated with the weight's time, never saying it was
    computed, nor from which creatinine (150 umol/L)."""
    card = only_card(run(pipeline, "r16-03-os-ap-cml-twice-daily-start-moderate-renal"))
    line = next(x for x in card["detail"].splitlines() if x.startswith("- Creatinine clearance:"))
    assert line == (
        "- Creatinine clearance: 28.7 mL/min (Cockcroft-Gault: creatinine 150 umol/L, weight 59.9 kg, age 71; "
        "23 Nov 2026 07:45)"
    )
    assert "**Recommended dose:** 300 mg once daily: 3 x 100 mg tablets (600 mg/day x 0.5)." in card["detail"]


def test_a_liver_test_sent_as_text_only_is_read(pipeline: Pipeline) -> None:
    """Second review, r04b: AST 410 U/L (ULN 40) coded only as text "AST (SGOT)" before a new start: no card."""
    outcome = run(pipeline, "r16-04b-os-gist-start-ast-text-only-10x")
    assert outcome.decision.facts["hepatic.ast_xuln"] == pytest.approx(10.25)
    (card,) = outcome.cards
    assert card["indicator"] == "critical" and "do not start" in card["summary"]


def test_withholding_renewal_drafts_says_to_hold_the_active_orders(pipeline: Pipeline) -> None:
    """Second review, r10: ALT 5.5x ULN while two 600 mg/day renewal drafts are signed; the only suggestion removes
    the drafts, and nothing said that the active orders they renew go on."""
    card = only_card(run(pipeline, "r16-10-os-ap-cml-split-renewal-alt-5x"))
    assert card["indicator"] == "critical"
    assert "**Recommended:** withhold imatinib: put the active order on hold" in card["detail"]
    assert [s["label"] for s in card["suggestions"]] == ["Withhold imatinib: remove the draft orders"]


def test_a_cml_cytopenia_card_does_not_speak_of_gist(pipeline: Pipeline) -> None:
    """Second review, r06: a chronic-phase CML stop card said "In GIST this row is the EU label's" and cited
    "current US Table 1 has no GIST row"; the GIST note is now IMA-HEME-002's, which fires for GIST only."""
    outcome = run(pipeline, "r16-06-pv-cml-anc-per-microlitre")
    card = only_card(outcome)
    assert card["indicator"] == "critical" and "GIST" not in card["summary"] + card["detail"]
    assert "Neutrophils (ANC): 0.6 x10^9/L (reported as 600 /uL; 23 Nov 2026 09:30)" in card["detail"]
