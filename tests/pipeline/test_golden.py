"""Golden outputs: what every fhir_examples request decides, pinned at the examples' evaluation time.

A change to a rule, the mapper or the estimator that changes any card shows up here as a diff to review.
Regenerate after a reviewed change with ``UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/pipeline/test_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def significant(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def condensed(outcome: Outcome) -> dict[str, Any]:
    decision = outcome.decision
    pk = outcome.pk.estimate
    return {
        "fired": list(decision.fired_ids),
        "dose": {
            "action": decision.dose.action,
            "daily_mg": decision.dose.daily_mg,
            "interval_h": decision.dose.interval_h,
        },
        "pk": None
        if pk is None
        else {
            "method": pk.method,
            "cmin_pred": significant(pk.cmin_pred_ng_ml),
            "p_target": significant(pk.p_target, 2),
        },
        "cards": [
            {
                "rule": card["source"]["topic"]["code"],
                "indicator": card["indicator"],
                "summary": card["summary"],
                # topics beyond the third card are folded into it, one line each
                "also": [
                    line.removeprefix("- **Also:** ")
                    for line in card.get("detail", "").splitlines()
                    if line.startswith("- **Also:** ")
                ],
                "suggestions": [
                    {
                        "label": s["label"],
                        "actions": [
                            {
                                "type": a["type"],
                                "resource": a.get("resource", {}).get("resourceType"),
                                "dose_mg": _dose(a),
                            }
                            for a in s.get("actions", [])
                        ],
                    }
                    for s in card.get("suggestions", [])
                ],
            }
            for card in outcome.cards
        ],
    }


def _dose(action: dict[str, Any]) -> float | None:
    resource = action.get("resource") or {}
    try:
        return float(resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"])
    except (KeyError, IndexError, TypeError):
        return None


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_golden_decision(pipeline: Pipeline, path: Path) -> None:
    got = condensed(pipeline.run(path.read_bytes(), now=EXAMPLES_EVALUATION_TIME))
    golden = GOLDEN / path.name
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file for {path.name}; run with UPDATE_GOLDEN=1 and review it"
    assert got == json.loads(golden.read_text(encoding="utf-8"))
