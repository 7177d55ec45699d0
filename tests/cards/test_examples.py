"""Issue 14 acceptance over every fhir_examples request at the examples' evaluation time: at most 3 cards, no
duplicate suggestion, detail at most 15 lines, no reference-file names, rule ids or FHIR references on a card,
and every dose suggestion's label states the resulting daily dose."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cds.cards.text import MAX_DETAIL_LINES
from cds.cards.topics import MAX_CARDS
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome, Pipeline
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
FHIR_REFERENCE = r"\b(?:Patient|Condition|AdverseEvent|Observation|Medication[A-Za-z]*)/[A-Za-z0-9.-]+"
INTERNAL = re.compile(rf"clinical-rules\.md|pk\.md|§|\bIMA-[A-Z]+-\d+|{FHIR_REFERENCE}")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    pipeline = Pipeline(explain_url=lambda hook_instance, _client="": f"https://cds.example/explain/{hook_instance}")
    return {p.stem: pipeline.run(p.read_bytes(), now=EXAMPLES_EVALUATION_TIME) for p in EXAMPLES}


def texts(card: dict[str, Any]) -> list[str]:
    return [card["summary"], card.get("detail", ""), *(s["label"] for s in card.get("suggestions", []))]


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_cards_are_few_short_and_suggest_each_action_once(outcomes: dict[str, Outcome], name: str) -> None:
    cards = outcomes[name].cards
    assert len(cards) <= MAX_CARDS
    for card in cards:
        assert len(card.get("detail", "").splitlines()) <= MAX_DETAIL_LINES, card["summary"]
    actions = [
        (a["type"], a.get("resourceId"), _content(a.get("resource")))
        for card in cards
        for s in card.get("suggestions", [])
        for a in s["actions"]
    ]
    assert len(actions) == len(set(actions)), "a suggestion is repeated"
    kinds = [(a[0], a[2] and json.loads(a[2]).get("resourceType")) for a in actions if a[0] != "delete"]
    assert len(kinds) == len(set(kinds)), "more than one suggestion of one kind"


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_dose_suggestions_state_the_resulting_daily_dose(outcomes: dict[str, Outcome], name: str) -> None:
    dose = outcomes[name].decision.dose
    for card in outcomes[name].cards:
        for suggestion in card.get("suggestions", []):
            updates = [a for a in suggestion["actions"] if a["type"] == "update"]
            if updates:
                assert dose.daily_mg is not None
                daily = f"{dose.daily_mg:g} mg"
                per_dose = f"{dose.daily_mg / 2:g} mg twice daily ({dose.daily_mg:g} mg/day)"
                assert f"Change to {daily} once daily" in suggestion["label"] or per_dose in suggestion["label"]
                for update in updates:
                    regimen = suggestion["label"].removeprefix("Change to ")
                    assert regimen in update["resource"]["medicationCodeableConcept"]["text"]
                    assert update["resource"]["dosageInstruction"][0]["text"].startswith(regimen)
            elif any(a["type"] == "delete" for a in suggestion["actions"]):
                assert suggestion["label"].startswith("Withhold imatinib: remove the draft order")


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_the_card_builder_adds_no_internal_references(outcomes: dict[str, Outcome], name: str) -> None:
    """Reference-file names, section signs and rule ids on a card come only from rule texts (being cleaned
    by the rules-cards work), never from what the card builder adds."""
    outcome = outcomes[name]
    rule_text = " ".join(f"{s.summary} {s.detail}" for s in outcome.decision.cards)
    for card in outcome.cards:
        for text in texts(card):
            for found in INTERNAL.findall(text):
                assert found in rule_text, f"{found!r} added by the card builder"


def test_no_internal_references_on_any_card(outcomes: dict[str, Outcome]) -> None:
    found = {name: INTERNAL.findall(" ".join(t for c in o.cards for t in texts(c))) for name, o in outcomes.items()}
    assert not {name: refs for name, refs in found.items() if refs}


def _content(resource: dict[str, Any] | None) -> str | None:
    """A resource without its id: two trough orders with different ids are still one order."""
    if resource is None:
        return None
    return json.dumps({k: v for k, v in resource.items() if k != "id"}, sort_keys=True)


def test_every_example_is_evaluated() -> None:
    assert len(EXAMPLES) >= 30 and all(isinstance(p, Path) for p in EXAMPLES)
