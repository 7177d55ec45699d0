"""Card text is for the clinician (issue 14): every card names its problem, a derived trough says how it was
obtained, and reviewer material (reference files, attribution remarks) stays in review notes and evidence notes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds.engine.catalogue import render_catalogue
from cds.engine.ruleset import RuleSet, check_rules
from cds.engine.schema import CARD_TOPICS
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from tests.conftest import ROOT, make_rules_root

INVALID = Path(__file__).parents[1] / "engine" / "invalid"
EXAMPLES = ROOT / "fhir_examples"
# words that belong to a reviewer, not to a clinician reading the card
REVIEWER_WORDS = re.compile(r"unverified|verbatim|attribution|Facts used|suggested separately|\[S\d+\]", re.I)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(ROOT / "rules")


def card_texts(rule_set: RuleSet) -> list[tuple[str, str]]:
    found = []
    for rule in rule_set.rules:
        if rule.card is not None:
            found += [(rule.id, rule.card.summary), (rule.id, rule.card.detail)]
            found += [(rule.id, s.label) for s in rule.card.suggestions]
    return found


def test_every_card_names_a_problem_and_dose_actions_are_on_the_dose_card(rule_set: RuleSet) -> None:
    cards = [r for r in rule_set.rules if r.card is not None]
    assert cards and all(r.card is not None and r.card.topic in CARD_TOPICS for r in cards)
    for rule in cards:
        assert rule.card is not None
        if any(s.action in ("apply-dose", "withhold") for s in rule.card.suggestions):
            assert rule.card.topic == "dose", rule.id


def test_no_reviewer_words_in_card_text(rule_set: RuleSet) -> None:
    assert [(rid, m.group()) for rid, text in card_texts(rule_set) for m in REVIEWER_WORDS.finditer(text)] == []


def test_the_model_proposed_dose_is_a_finding_not_a_second_suggestion(rule_set: RuleSet) -> None:
    rule = rule_set.rule("IMA-TROUGH-041")
    assert rule.card is not None and rule.card.topic == "level" and rule.card.suggestions == ()


def test_internal_references_in_card_text_are_reported_where_they_are(tmp_path: Path) -> None:
    path = INVALID / "e021_internal_reference.yaml"
    _, diagnostics = check_rules(make_rules_root(tmp_path, path))
    lines = path.read_text(encoding="utf-8").splitlines()
    found = {(d.code, lines[d.line - 1].strip().split(":")[0]) for d in diagnostics}
    assert found == {("E021", "summary"), ("E021", "detail"), ("E021", "- {label")}
    messages = " ".join(d.message for d in diagnostics)
    assert "reference file ('clinical-rules.md')" in messages
    assert "section sign" in messages and "rule id ('IMA-RENAL-010')" in messages


@pytest.mark.parametrize(
    ("name", "trough", "basis", "level"),
    [
        ("patient-view-pregnant-low-trough.json", "693", "corrected for sampling time", "700"),
        ("patient-view-random-level-3h-after-dose.json", "715", "estimated by the PK model", "2450"),
    ],
)
def test_a_derived_trough_says_how_it_was_obtained_beside_the_measured_value(
    pipeline: Pipeline, name: str, trough: str, basis: str, level: str
) -> None:
    decision = pipeline.run((EXAMPLES / name).read_bytes(), now=EXAMPLES_EVALUATION_TIME).decision
    assert decision.derived["tdm.trough_basis"] == basis
    (card,) = [c for c in decision.cards if c.rule_id == "IMA-TROUGH-020"]
    assert f"trough {trough} ng/mL ({basis})" in card.summary
    assert f"Measured level: {level} ng/mL" in card.detail  # in ng/mL; the key facts add the unit it was reported in


def test_review_notes_are_in_the_catalogue_not_on_cards(rule_set: RuleSet) -> None:
    rule = rule_set.rule("IMA-TROUGH-020")
    assert "attribution unverified" in rule.review_note
    catalogue = render_catalogue(rule_set)
    assert f"- **Review note:** {rule.review_note}" in catalogue
    assert all(rule.review_note not in text for _, text in card_texts(rule_set))
