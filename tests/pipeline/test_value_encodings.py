"""The same laboratory fact sent in different encodings gives the same facts and the same decision.

Each group encodes one ANC result in several ways an EHR or a laboratory sends it (valueQuantity, a
quantity with a comparator, valueString with its own unit or the referenceRange unit, digit groups and
decimal commas, an interpretation flag only); every member must map to identical ANC facts and fire the
same rules. A censored imatinib level must never reach the PK estimator.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import ROOT

BASE = json.loads((ROOT / "fhir_examples" / "patient-view-neutropenia.json").read_text(encoding="utf-8"))
TROUGH = json.loads((ROOT / "fhir_examples" / "patient-view-low-trough-cml.json").read_text(encoding="utf-8"))
UCUM = "http://unitsofmeasure.org"
RANGE = [{"low": {"value": 1.8, "unit": "10*9/L"}, "high": {"value": 7.5, "unit": "10*9/L"}}]
FLAG_LL = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "LL"}]}]
ANC_FACTS = ("heme.anc", "heme.anc_censored", "lab.anc_unreadable", "lab.anc_flag")

GROUPS: dict[str, list[dict[str, Any]]] = {
    "exact 0.8": [
        {"valueQuantity": {"value": 0.8, "unit": "10*9/L", "system": UCUM, "code": "10*9/L"}},
        {"valueQuantity": {"value": 800, "unit": "/uL", "system": UCUM, "code": "/uL"}},
        {"valueString": "0.8", "referenceRange": RANGE},
        {"valueString": "0,8 10^9/L"},
        {"valueString": "800 /uL"},
    ],
    "below 0.10": [
        {"valueQuantity": {"value": 0.1, "comparator": "<", "unit": "10*9/L", "system": UCUM, "code": "10*9/L"}},
        {"valueString": "<0.10", "referenceRange": RANGE},
        {"valueString": "< 0,10 x10^9/L"},
        {"valueString": "<100 /uL", "interpretation": FLAG_LL},
    ],
    "flagged LL only": [
        {"interpretation": FLAG_LL},
        {"interpretation": FLAG_LL, "dataAbsentReason": {"coding": [{"code": "error"}]}},
        {"interpretation": FLAG_LL, "valueString": "see comment"},
    ],
}


def _with_anc(encoding: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    for entry in body["prefetch"]["observations"]["entry"]:
        if entry["resource"]["id"] == "lab-anc":
            res = entry["resource"]
            for key in ("valueQuantity", "referenceRange", "interpretation"):
                res.pop(key, None)
            res.update(copy.deepcopy(encoding))
    return body


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def _run(pipeline: Pipeline, body: dict[str, Any]) -> Outcome:
    return pipeline.run(json.dumps(body).encode(), now=EXAMPLES_EVALUATION_TIME)


def _anc(outcome: Outcome) -> dict[str, Any]:
    facts = outcome.record.facts
    kept = {name: facts[name].value for name in ANC_FACTS if name in facts}
    # the text names the result by its date; its reason differs by encoding, which the card shows as it is
    return {k: (v if k != "lab.anc_unreadable" else str(v).startswith("Result of 24 Nov")) for k, v in kept.items()}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_encoding_of_one_result_gives_the_same_facts_and_rules(pipeline: Pipeline, group: str) -> None:
    outcomes = [_run(pipeline, _with_anc(encoding)) for encoding in GROUPS[group]]
    first = outcomes[0]
    for encoding, outcome in zip(GROUPS[group][1:], outcomes[1:], strict=True):
        assert _anc(outcome) == _anc(first), encoding
        assert outcome.decision.fired_ids == first.decision.fired_ids, encoding


def test_the_groups_mean_what_they_say(pipeline: Pipeline) -> None:
    exact, below, flagged = (_anc(_run(pipeline, _with_anc(GROUPS[g][0]))) for g in GROUPS)
    assert exact == {"heme.anc": 0.8}
    assert below == {"heme.anc": 0.1, "heme.anc_censored": "below"}
    assert flagged == {"lab.anc_unreadable": True, "lab.anc_flag": "LL"}


def test_anc_below_010_counts_as_below_every_threshold_from_010(pipeline: Pipeline) -> None:
    below = _run(pipeline, _with_anc(GROUPS["below 0.10"][0]))
    assert "IMA-HEME-010" in below.decision.fired_ids  # chronic phase: ANC < 1.0 withholds
    assert below.decision.dose.action == "withhold"


def test_an_undecidable_bound_is_not_used_as_exact(pipeline: Pipeline) -> None:
    """'<2.0' cannot say whether the ANC is below the chronic-phase 1.0: the Table 1 rule must not fire as if
    the ANC were 2.0 (then: no withhold, silently) nor as if it were below 1.0."""
    bound = _run(pipeline, _with_anc({"valueString": "<2.0 10*9/L"}))
    exact = _run(pipeline, _with_anc({"valueString": "2.0 10*9/L"}))
    assert bound.record.facts["heme.anc_censored"].value == "below"
    assert "IMA-HEME-010" not in bound.decision.fired_ids and "IMA-HEME-010" not in exact.decision.fired_ids


def _with_level(value: dict[str, Any], older: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(TROUGH)
    entries = body["prefetch"]["observations"]["entry"]
    level = next(e["resource"] for e in entries if e["resource"]["id"] == "lvl-1")
    if older:  # an exact level two weeks before, which must not stand in for the censored one
        previous = copy.deepcopy(level)
        previous["id"], previous["effectiveDateTime"] = "lvl-0", "2026-11-06T19:30:00Z"
        entries.append({"resource": previous})
    level.pop("valueQuantity")
    level.update(value)
    return body


@pytest.mark.parametrize(
    "value",
    [
        {"valueQuantity": {"value": 50, "comparator": "<", "unit": "ng/mL", "system": UCUM, "code": "ng/mL"}},
        {"valueString": "< 50 ng/mL"},
        {"valueString": "<50", "referenceRange": [{"low": {"value": 50, "unit": "ng/mL"}}]},
    ],
)
def test_a_level_below_the_lloq_is_never_fitted_nor_escalated(pipeline: Pipeline, value: dict[str, Any]) -> None:
    exact = _run(pipeline, _with_level({"valueQuantity": {"value": 620, "unit": "ng/mL"}}))
    assert exact.pk.estimate is not None  # the same request with an exact level is fitted
    for body in (_with_level(value), _with_level(value, older=True)):
        outcome = _run(pipeline, body)
        assert outcome.pk.estimate is None
        assert any("reported only as <50 ng/mL" in w for w in outcome.pk.warnings)
        assert all(lv.ng_ml != 50 for lv in outcome.record.levels)
        assert "IMA-UNREAD-030" in outcome.decision.fired_ids
        assert outcome.decision.dose.action in ("none", "keep")
        assert "tdm.trough" not in outcome.decision.facts


def test_a_level_above_the_uloq_is_not_fitted(pipeline: Pipeline) -> None:
    outcome = _run(pipeline, _with_level({"valueString": "> 10 000 ng/mL"}))
    assert outcome.record.facts["level.conc_censored"].value == "above"
    assert outcome.pk.estimate is None and "IMA-UNREAD-031" in outcome.decision.fired_ids


def test_an_ambiguous_level_string_that_is_implausible_as_thousands_is_unreadable(pipeline: Pipeline) -> None:
    outcome = _run(pipeline, _with_level({"valueString": "60,000 ng/mL"}))  # 60000 (> plausible) or 60
    assert "level.conc" not in outcome.record.facts
    assert "ambiguous" in str(outcome.record.facts["lab.level_unreadable"].value)
    assert "IMA-UNREAD-014" in outcome.decision.fired_ids
