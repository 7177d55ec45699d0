"""The relevance stage on its own: explicit drafts, facts and cards in, the cards shown and the reason out."""

from __future__ import annotations

import pytest

from cds.engine.decision import CardSpec
from cds.engine.policy import Policy, load_policy
from cds.errors import RuleError
from cds.fhir.types import DraftDrug, DraftKind
from cds.relevance import judge, level_recency_days
from tests.conftest import RULES

POLICY = load_policy(RULES / "policy.yaml")
LIMIT = level_recency_days(POLICY)


def card(rule_id: str, topic: str, indicator: str = "info") -> CardSpec:
    return CardSpec(rule_id, indicator, f"summary of {rule_id}", "", (), (), "tests", "1.0.0", topic)


def draft(
    rid: str, kind: DraftKind, drug: str | None, *, acted_on: bool = True, classes: tuple[str, ...] = ()
) -> DraftDrug:
    return DraftDrug(("MedicationRequest", rid), f"MedicationRequest/{rid}", acted_on, kind, drug, classes)


CARDS = (card("R-LEVEL", "level"), card("R-MON", "monitoring"), card("R-DOSE", "dose", "warning"))
IMATINIB = draft("ima", "imatinib", "imatinib 400 MG Oral Tablet")
AMOXICILLIN = draft("amox", "unrelated", "amoxicillin 500 MG Oral Capsule")
RIFAMPIN = draft("rif", "interacting", "rifampin 300 MG Oral Capsule", classes=("cyp3a4-strong-inducers",))
ON_IMATINIB = {"regimen.status": "active", "regimen.daily_mg": 400.0}


def test_the_shipped_limit_is_fourteen_days() -> None:
    assert LIMIT == 14.0


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_an_imatinib_draft_shows_every_card(hook: str) -> None:
    verdict = judge(hook, [AMOXICILLIN, IMATINIB], {}, CARDS, POLICY)
    assert verdict.relevant and verdict.cards == CARDS and verdict.dropped == ()
    assert verdict.why == f"{hook}: imatinib draft MedicationRequest/ima"


def test_an_interacting_draft_is_relevant_and_names_its_class() -> None:
    verdict = judge("order-sign", [RIFAMPIN], {}, CARDS, POLICY)
    assert verdict.relevant and verdict.cards == CARDS
    assert verdict.why == (
        "order-sign: interacting draft MedicationRequest/rif (rifampin 300 MG Oral Capsule: cyp3a4-strong-inducers)"
    )


def test_unrelated_drafts_show_nothing_and_say_which_drugs() -> None:
    levothyroxine = draft("levo", "unrelated", "levothyroxine sodium 0.05 MG Oral Tablet")
    verdict = judge("order-sign", [AMOXICILLIN, levothyroxine], ON_IMATINIB, CARDS, POLICY)
    assert not verdict.relevant and verdict.cards == ()
    assert [d.rule_id for d in verdict.dropped] == ["R-LEVEL", "R-MON", "R-DOSE"]
    assert verdict.why == (
        "order-sign: no imatinib or interacting draft "
        "(drafts: amoxicillin 500 MG Oral Capsule, levothyroxine sodium 0.05 MG Oral Tablet)"
    )


def test_order_select_looks_only_at_the_selection() -> None:
    unselected = draft("ima", "imatinib", "imatinib 400 MG Oral Tablet", acted_on=False)
    verdict = judge("order-select", [AMOXICILLIN, unselected], ON_IMATINIB, CARDS, POLICY)
    assert not verdict.relevant and verdict.cards == ()
    assert verdict.why == (
        "order-select: no imatinib or interacting draft selected "
        "(selected: amoxicillin 500 MG Oral Capsule; not selected: imatinib 400 MG Oral Tablet)"
    )


def test_a_draft_naming_no_medication_is_not_relevant() -> None:
    verdict = judge("order-select", [draft("request-123", "no-medication", None)], ON_IMATINIB, CARDS, POLICY)
    assert not verdict.relevant and verdict.cards == ()
    assert "MedicationRequest/request-123 names no medication" in verdict.why


def test_a_draft_whose_medication_cannot_be_told_is_not_called_unrelated() -> None:
    verdict = judge("order-sign", [draft("x", "unidentified", None)], {}, CARDS, POLICY)
    assert verdict.relevant and verdict.cards == CARDS
    assert "cannot tell what MedicationRequest/x orders" in verdict.why


def test_an_order_hook_without_drafts_is_not_relevant() -> None:
    verdict = judge("order-sign", [], ON_IMATINIB, CARDS, POLICY)
    assert not verdict.relevant and verdict.why == "order-sign: no imatinib or interacting draft (drafts: none)"


@pytest.mark.parametrize(
    ("age", "shown"),
    [(0.0, True), (LIMIT - 0.01, True), (LIMIT, True), (LIMIT + 0.01, False), (400.0, False)],
)
def test_patient_view_interprets_a_level_only_while_it_is_recent(age: float, shown: bool) -> None:
    verdict = judge("patient-view", [], {**ON_IMATINIB, "level.age_days": age}, CARDS, POLICY)
    assert verdict.relevant
    assert ("R-LEVEL" in [c.rule_id for c in verdict.cards]) is shown
    assert {"R-MON", "R-DOSE"} <= {c.rule_id for c in verdict.cards}  # monitoring and dose stay
    if not shown:
        (dropped,) = verdict.dropped
        assert dropped.rule_id == "R-LEVEL" and "days of policy.actionable_level_max_age_days" in dropped.because
        assert "1 card(s) not actionable now" in verdict.why


@pytest.mark.parametrize("topic", ["monitoring", "dose", "interaction", "missing-data", "scope", "IMA-NO-TOPIC-001"])
def test_patient_view_keeps_every_other_topic_on_an_old_level(topic: str) -> None:
    verdict = judge("patient-view", [], {**ON_IMATINIB, "level.age_days": 90.0}, [card("R", topic)], POLICY)
    assert [c.rule_id for c in verdict.cards] == ["R"]


@pytest.mark.parametrize(("indicator", "shown"), [("info", False), ("warning", True), ("critical", True)])
def test_an_old_level_hides_only_the_cards_that_ask_for_nothing(indicator: str, shown: bool) -> None:
    """A below-target level that nobody acted on is still the reason for a dose card: never hidden by age."""
    old_level = {**ON_IMATINIB, "level.age_days": 60.0}
    verdict = judge("patient-view", [], old_level, [card("R", "level", indicator)], POLICY)
    assert bool(verdict.cards) is shown


def test_patient_view_keeps_a_critical_level_card_and_one_without_a_known_age() -> None:
    critical = card("R-CRIT", "level", "critical")
    old = judge("patient-view", [], {**ON_IMATINIB, "level.age_days": 90.0}, [critical], POLICY)
    assert old.cards == (critical,)
    unknown_age = judge("patient-view", [], ON_IMATINIB, [card("R-LEVEL", "level")], POLICY)
    assert [c.rule_id for c in unknown_age.cards] == ["R-LEVEL"]


def test_patient_view_without_imatinib_on_record_shows_nothing() -> None:
    verdict = judge("patient-view", [], {"patient.age": 60.0, "dx.indication": "CML"}, CARDS, POLICY)
    assert not verdict.relevant and verdict.cards == ()
    assert verdict.why == "patient-view: no imatinib therapy or level on record"


def test_another_hook_shows_nothing() -> None:
    verdict = judge("encounter-start", [IMATINIB], ON_IMATINIB, CARDS, POLICY)
    assert not verdict.relevant and verdict.cards == ()


def test_the_trace_names_drafts_and_dropped_cards() -> None:
    trace = judge("order-select", [AMOXICILLIN, RIFAMPIN], {}, CARDS, POLICY).trace()
    assert trace["relevant"] is True
    assert trace["drafts"][1] == {
        "order": "MedicationRequest/rif",
        "acted_on": True,
        "kind": "interacting",
        "drug": "rifampin 300 MG Oral Capsule",
        "classes": ["cyp3a4-strong-inducers"],
    }
    assert trace["dropped"] == []


def test_a_policy_without_the_recency_parameter_is_refused() -> None:
    with pytest.raises(RuleError, match="actionable_level_max_age_days"):
        level_recency_days(Policy("p", "1", "US", {}))
