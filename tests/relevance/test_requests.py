"""The relevance stage in the pipeline: whole requests in, the cards shown and the trace's reason out."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.cards.topics import slots
from cds.cli.main import main
from cds.errors import RuleError
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import ROOT, RULES
from tests.rules.planted import HEADER

EXAMPLES = ROOT / "fhir_examples"
UNRELATED = "order-sign-unrelated-drafts-on-imatinib.json"
SANDBOX = "order-select-sandbox-no-medication.json"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def run(pipeline: Pipeline, body: dict[str, Any]) -> Outcome:
    return pipeline.run(body, now=EXAMPLES_EVALUATION_TIME)


def entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body["context"]["draftOrders"]["entry"]
    return found


def imatinib_draft(patient: str) -> dict[str, Any]:
    """The 600 mg imatinib draft of the order-select example, for another patient."""
    (entry,) = [e for e in entries(example("order-select-imatinib-selected.json")) if "ima" in e["resource"]["id"]]
    resource = copy.deepcopy(entry["resource"])
    resource["subject"] = {"reference": f"Patient/{patient}"}
    return {"resource": resource}


def unrelated_draft(rid: str, patient: str, display: str | None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "MedicationRequest", "id": rid, "status": "draft"}
    resource["subject"] = {"reference": f"Patient/{patient}"}
    if display is not None:  # None: the Sandbox's draft before a medication is picked (no intent either)
        resource |= {
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "display": display}]},
        }
    return {"resource": resource}


def test_an_order_sign_of_unrelated_drugs_answers_no_cards(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example(UNRELATED))
    assert [c.rule_id for c in outcome.decision.cards] == ["IMA-TDMIND-007"]  # the TDM card still fires ...
    assert outcome.response == {"cards": []}  # ... but is not about this order
    relevance = outcome.trace()["relevance"]
    assert relevance["relevant"] is False
    assert relevance["why"] == (
        "order-sign: no imatinib or interacting draft "
        "(drafts: amoxicillin 500 MG Oral Capsule, levothyroxine sodium 0.05 MG Oral Tablet)"
    )
    assert relevance["dropped"] == [
        {"rule": "IMA-TDMIND-007", "topic": "monitoring", "because": "the request is not relevant"}
    ]


def card_topics(outcome: Outcome) -> set[str]:
    """The topics the decision's findings make cards of (a level or monitoring finding joins a dose change)."""
    return {slot.topic.code for slot in slots(outcome.decision.cards, outcome.decision.dose)}


@pytest.mark.parametrize(
    ("display", "relevant"),
    [
        ("clarithromycin 500 MG Oral Tablet", True),  # strong CYP3A4 inhibitor
        ("rifampin 300 MG Oral Capsule", True),  # strong inducer
        ("ketoconazole 20 MG/ML Topical Cream", False),  # topical: not an interaction
        ("metformin 500 MG Oral Tablet", False),
    ],
)
def test_an_interacting_drug_makes_an_order_sign_relevant(pipeline: Pipeline, display: str, relevant: bool) -> None:
    body = example(UNRELATED)
    entries(body)[0]["resource"]["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "display": display}]}
    outcome = run(pipeline, body)
    assert outcome.decision.cards
    assert outcome.trace()["relevance"]["relevant"] is relevant
    assert len(outcome.cards) == (len(card_topics(outcome)) if relevant else 0)


def test_the_rifampin_example_keeps_its_cards(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example("order-sign-rifampin-coprescribed.json"))
    assert {c["source"]["topic"]["code"] for c in outcome.cards} == card_topics(outcome)
    assert "IMA-CYP-010" in [c.rule_id for c in outcome.decision.cards]
    assert outcome.trace()["relevance"]["why"] == (
        "order-sign: interacting draft MedicationRequest/rx-rif-draft "
        "(rifampin 300 MG Oral Capsule: cyp3a4-strong-inducers)"
    )


def test_order_select_acts_only_on_the_selected_draft(pipeline: Pipeline) -> None:
    body = example(UNRELATED)
    body["hook"] = "order-select"
    entries(body).append(imatinib_draft(body["context"]["patientId"]))
    body["context"]["selections"] = ["MedicationRequest/rx-amoxicillin"]
    outcome = run(pipeline, body)
    assert outcome.response == {"cards": []}
    assert outcome.trace()["relevance"]["why"] == (
        "order-select: no imatinib or interacting draft selected (selected: amoxicillin 500 MG Oral Capsule; "
        "not selected: levothyroxine sodium 0.05 MG Oral Tablet, imatinib 100 MG Oral Tablet)"
    )
    body["context"]["selections"] = ["MedicationRequest/rx-ima-600"]
    selected = run(pipeline, body)
    assert selected.cards and selected.trace()["relevance"]["relevant"] is True


def test_the_sandbox_draft_without_medication_answers_no_cards(pipeline: Pipeline) -> None:
    outcome = run(pipeline, example(SANDBOX))
    assert outcome.response == {"cards": []}
    assert outcome.trace()["relevance"]["why"] == (
        "order-select: no imatinib or interacting draft selected (selected: MedicationRequest/request-123 names no "
        "medication)"
    )


def test_an_order_select_without_selections_acts_on_nothing(pipeline: Pipeline) -> None:
    body = example(UNRELATED)
    body["hook"] = "order-select"
    entries(body).append(imatinib_draft(body["context"]["patientId"]))
    outcome = run(pipeline, body)  # no context.selections: a warning, and nothing is selected
    assert outcome.response == {"cards": []}
    assert "context.selections: missing on order-select" in " ".join(outcome.trace()["warnings"])
    assert outcome.trace()["relevance"]["why"].startswith("order-select: no imatinib or interacting draft selected")


def test_evaluate_trace_prints_the_relevance_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(EXAMPLES / UNRELATED), "--now", "2026-11-25T12:00:00Z", "--trace"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["cards"] == []
    assert printed["trace"]["relevance"]["why"].startswith("order-sign: no imatinib or interacting draft")


ORDER_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("order-*.json"))
UNRELATED_DRUGS = [
    "amoxicillin 500 MG Oral Capsule",
    "levothyroxine sodium 0.05 MG Oral Tablet",
    "metformin hydrochloride 500 MG Oral Tablet",
    "ondansetron 4 MG Oral Tablet",
    None,  # a draft naming no medication
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(ORDER_EXAMPLES),
    added=st.lists(st.tuples(st.sampled_from(UNRELATED_DRUGS), st.integers(0, 3)), min_size=1, max_size=3),
)
def test_unrelated_drafts_never_change_the_cards(
    pipeline: Pipeline, name: str, added: list[tuple[str | None, int]]
) -> None:
    body = example(name)
    before = run(pipeline, body).cards
    patient = body["context"]["patientId"]
    for i, (display, position) in enumerate(added):
        entries(body).insert(position, unrelated_draft(f"rx-unrelated-{i}", patient, display))
    after = run(pipeline, body)
    assert {d.kind for d in after.record.drafts if d.order.endswith(tuple(f"-{i}" for i in range(3)))} <= {
        "unrelated",
        "no-medication",
    }
    assert after.cards == before


# --- patient-view: a planted rule set whose cards carry topics --------------------------------------------------

PLANTED = HEADER.format(id="relevance-planted") + "".join(
    f"""  - id: {rule_id}
    title: planted {topic} card
    hooks: [patient-view]
    evidence: [{{citation: planted, level: local-policy}}]
    when: {{present: {fact}}}
    then: {{card: {{indicator: info, summary: planted {topic} card, topic: {topic}}}}}
    tests:
      - {{name: fires, facts: {{{fact}: {value}}}, expect: {{fired: [{rule_id}]}}}}
"""
    for rule_id, topic, fact, value in (
        ("PL-LEVEL-001", "level", "level.conc", "620 ng/mL"),
        ("PL-MON-001", "monitoring", "regimen.daily_mg", "400 mg"),
    )
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    root: Path = tmp_path_factory.mktemp("relevance") / "rules"
    shutil.copytree(RULES, root)
    for path in (root / "imatinib").glob("*.yaml"):
        path.unlink()
    (root / "imatinib" / "relevance-planted.yaml").write_text(PLANTED, encoding="utf-8")
    return Pipeline(root)


@pytest.mark.parametrize(("days_later", "level_shown"), [(0, True), (9, True), (10, False), (60, False)])
def test_patient_view_shows_a_level_card_only_while_the_level_is_recent(
    planted: Pipeline, days_later: int, level_shown: bool
) -> None:
    """The level in the example was drawn 4.69 days before the evaluation time; the policy allows 14 days."""
    body = example("patient-view-low-trough-cml.json")
    outcome = planted.run(body, now=EXAMPLES_EVALUATION_TIME + timedelta(days=days_later))
    assert [c.rule_id for c in outcome.decision.cards] == ["PL-LEVEL-001", "PL-MON-001"]
    shown = [c["source"]["topic"]["code"] for c in outcome.cards]
    assert shown == (["level", "monitoring"] if level_shown else ["monitoring"])
    dropped = outcome.trace()["relevance"]["dropped"]
    assert [d["rule"] for d in dropped] == ([] if level_shown else ["PL-LEVEL-001"])


def test_an_interacting_value_set_missing_from_the_terminology_stops_the_pipeline_at_start(tmp_path: Path) -> None:
    root = tmp_path / "rules"
    shutil.copytree(RULES, root)
    mapping = root / "mapping.yaml"
    settings = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    settings["relevance"]["interacting_value_sets"].append("p-gp-inhibitors")
    mapping.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with pytest.raises(RuleError, match="no value set p-gp-inhibitors"):
        Pipeline(root)
