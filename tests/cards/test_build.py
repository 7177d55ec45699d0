"""The card builder on explicit decisions: one card per topic, at most three, short detail, one suggestion per
distinct action, labels that state the resulting regimen, and ids that do not depend on rule ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cds.cards import CardContext, build_cards
from cds.cards.build import RecordedFact
from cds.cards.orders import TABLET_100, TABLET_400
from cds.cards.text import MAX_DETAIL_LINES, merge_reasons, readable_time, short_citation
from cds.cards.topics import placement
from cds.engine.compose import DoseDecision, DoseStep
from cds.engine.decision import CardSpec, Decision, FiredRule
from cds.engine.model import Evidence, Suggestion
from cds.engine.ruleset import RuleSet

LABEL = Evidence("Gleevec (imatinib) US prescribing information, Renal Impairment (§2.12)", "label", note="check it")
LOCAL = Evidence('clinical-rules.md §9.1 "Split and repeated orders" (one regimen; a renewal)', "local-policy")
APPLY = Suggestion("Start at 50% of the ordered dose", "apply-dose")
WITHHOLD = Suggestion("Withhold", "withhold")
LEVEL = Suggestion("Order an imatinib trough level", "order-level")


def spec(
    rule: str,
    topic: str,
    indicator: str = "info",
    *,
    summary: str | None = None,
    detail: str = "Why it matters.",
    suggestions: tuple[Suggestion, ...] = (),
) -> CardSpec:
    return CardSpec(
        rule_id=rule,
        indicator=indicator,
        summary=summary or f"{rule} finding",
        detail=detail,
        suggestions=suggestions,
        evidence=(LABEL, LOCAL),
        ruleset_id="test",
        ruleset_version="1.0.0",
        topic=topic,
    )


def decision(
    *specs: CardSpec,
    dose: DoseDecision | None = None,
    facts: Mapping[str, Any] | None = None,
    used: Mapping[str, Any] | None = None,
) -> Decision:
    fired = tuple(FiredRule(s.rule_id, f"title of {s.rule_id}", "test", "1.0.0", 1, dict(used or {})) for s in specs)
    return Decision(
        hook="order-sign",
        ruleset_digest="x",
        ruleset_version="1",
        facts=dict(facts or {}),
        derived={},
        fired=fired,
        dose=dose or DoseDecision("none", None, None, ()),
        cards=specs,
        warnings=(),
    )


def draft(tablet: dict[str, str], order_id: str = "rx-1") -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [dict(tablet)]},
    }


def context(*drafts: dict[str, Any], rule_set: RuleSet | None = None, **kwargs: Any) -> CardContext:
    return CardContext(
        "hook-1",
        "pt-1",
        drafts,
        explain_url="https://cds.example/explain/x",
        vocabulary=rule_set.vocabulary if rule_set else None,
        **kwargs,
    )


def labels(cards: list[dict[str, Any]]) -> list[str]:
    return [s["label"] for c in cards for s in c.get("suggestions", [])]


def test_specs_of_one_topic_make_one_card_led_by_the_most_severe() -> None:
    cards = build_cards(
        decision(spec("R-1", "level"), spec("R-2", "level", "warning"), spec("R-3", "level", "warning")), context()
    )
    (card,) = cards
    assert (card["indicator"], card["summary"]) == ("warning", "R-2 finding")
    assert "- R-1 finding" in card["detail"] and "- R-3 finding" in card["detail"]
    assert card["source"]["topic"] == {
        "system": "https://imatinib-cds.example/CodeSystem/card-topic",
        "code": "level",
        "display": "Imatinib level",
    }
    assert card["links"][0]["url"] == "https://cds.example/explain/x" and card["overrideReasons"]


def test_a_topic_that_is_still_a_rule_id_shows_the_rule_title_not_the_id() -> None:
    (card,) = build_cards(decision(spec("IMA-X-001", "IMA-X-001", summary="A finding")), context())
    assert card["source"]["topic"]["display"] == "title of IMA-X-001"
    assert "IMA-X-001" not in card["summary"] + card["detail"]


def test_cards_are_ordered_by_indicator_then_clinical_priority() -> None:
    specs = [spec("R-1", "monitoring", "warning"), spec("R-2", "level", "warning"), spec("R-3", "scope")]
    cards = build_cards(decision(*specs), context())
    assert [c["source"]["topic"]["code"] for c in cards] == ["level", "monitoring", "scope"]


def test_beyond_three_topics_fold_into_the_last_card_with_their_suggestions() -> None:
    specs = [
        spec("R-1", "scope", "critical"),
        spec("R-2", "dose", "warning"),
        spec("R-3", "interaction", "info"),
        spec("R-4", "level", "info"),
        spec("R-5", "monitoring", "info", suggestions=(LEVEL,)),
    ]
    cards = build_cards(decision(*specs), context())
    assert len(cards) == 3
    last = cards[2]
    assert last["source"]["topic"]["code"] == "interaction"
    assert "- **Also:** R-4 finding" in last["detail"] and "- **Also:** R-5 finding" in last["detail"]
    assert labels(cards) == ["Order an imatinib trough level"]
    assert last["suggestions"][0]["actions"][0]["type"] == "create"
    assert placement(decision(*specs).cards)["R-5"] == "interaction"


def test_the_dose_change_is_one_suggestion_on_the_dose_card_stating_the_regimen() -> None:
    dose = DoseDecision("change", 300.0, 24, ())
    specs = [
        spec("R-1", "dose", "warning", suggestions=(APPLY,)),
        spec("R-2", "interaction", "warning", suggestions=(APPLY,)),
        spec("R-3", "dose", "info", suggestions=(APPLY,)),
    ]
    cards = build_cards(decision(*specs, dose=dose), context(draft(TABLET_100)))
    by_topic = {c["source"]["topic"]["code"]: c for c in cards}
    assert labels(cards) == ["Change to 300 mg once daily: 3 x 100 mg tablets"]
    assert "suggestions" not in by_topic["interaction"]
    (action,) = by_topic["dose"]["suggestions"][0]["actions"]
    order = action["resource"]
    assert order["medicationCodeableConcept"]["coding"] == [TABLET_100]  # the ordered product is kept
    assert "300 mg once daily: 3 x 100 mg tablets" in order["medicationCodeableConcept"]["text"]
    assert order["dosageInstruction"][0]["text"].startswith("300 mg once daily: 3 x 100 mg tablets")
    assert "**Recommended dose:** 300 mg once daily: 3 x 100 mg tablets." in by_topic["dose"]["detail"]
    assert "Recommended dose" not in by_topic["interaction"]["detail"]


def test_twice_daily_label_names_the_daily_total_and_extra_drafts_are_removed() -> None:
    dose = DoseDecision("change", 800.0, 12, ())
    drafts = (draft(TABLET_400, "rx-1"), draft(TABLET_100, "rx-2"))
    (card,) = build_cards(decision(spec("R-1", "dose", suggestions=(APPLY,)), dose=dose), context(*drafts))
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Change to 400 mg twice daily (800 mg/day): 1 x 400 mg tablet per dose"
    assert [a["type"] for a in suggestion["actions"]] == ["delete", "update"]
    assert suggestion["actions"][0]["resourceId"] == "MedicationRequest/rx-2"


def test_withholding_removes_the_drafts_and_orders_no_trough() -> None:
    dose = DoseDecision("withhold", None, None, ())
    specs = [spec("R-1", "dose", "critical", suggestions=(WITHHOLD,)), spec("R-2", "monitoring", suggestions=(LEVEL,))]
    cards = build_cards(decision(*specs, dose=dose), context(draft(TABLET_400)))
    assert labels(cards) == ["Withhold imatinib: remove the draft order"]
    assert "**Recommended:** withhold imatinib." in cards[0]["detail"]


def test_a_level_and_its_monitoring_join_the_card_that_changes_the_dose_and_stand_alone_otherwise() -> None:
    specs = [spec("R-1", "level", "warning", suggestions=(LEVEL,)), spec("R-2", "dose", suggestions=(APPLY,))]
    changed = build_cards(decision(*specs, dose=DoseDecision("change", 600.0, 24, ())), context(draft(TABLET_400)))
    assert [c["source"]["topic"]["code"] for c in changed] == ["dose"]
    assert changed[0]["indicator"] == "warning"  # the most severe finding leads the merged card
    assert [s["label"].split(":")[0] for s in changed[0]["suggestions"]] == [
        "Change to 600 mg once daily",
        LEVEL.label,
    ]  # the dose change first, the trough to repeat after it
    assert changed[0]["selectionBehavior"] == "any"
    kept = build_cards(decision(*specs, dose=DoseDecision("keep", 400.0, 24, ())), context(draft(TABLET_400)))
    assert [c["source"]["topic"]["code"] for c in kept] == ["level", "dose"]


def test_the_dose_line_shows_the_label_arithmetic_only_when_factors_were_applied() -> None:
    applied = DoseDecision(
        "change",
        300.0,
        24,
        (
            DoseStep("start from 400", "R-1", "400 mg/day"),
            DoseStep("x 0.5", "R-1", "x 0.5"),
            DoseStep("x 1.5", "R-2", "x 1.5"),
        ),
    )
    specs = (spec("R-1", "dose", "warning", suggestions=(APPLY,)), spec("R-2", "dose", "warning"))
    (card,) = build_cards(decision(*specs, dose=applied), context(draft(TABLET_100)))
    assert "**Recommended dose:** 300 mg once daily: 3 x 100 mg tablets (400 mg/day x 0.5 x 1.5)." in card["detail"]
    set_dose = DoseDecision("change", 600.0, 24, (DoseStep("set to 600 mg/day (R-1)", "R-1"),))
    (card,) = build_cards(decision(*specs, dose=set_dose), context(draft(TABLET_100)))
    assert "**Recommended dose:** 600 mg once daily: 6 x 100 mg tablets." in card["detail"]


def test_one_trough_order_per_response_however_many_topics_ask() -> None:
    later = Suggestion("Order an imatinib trough from day 8", "order-level")
    specs = [spec("R-1", "monitoring", suggestions=(LEVEL,)), spec("R-2", "level", "warning", suggestions=(later,))]
    cards = build_cards(decision(*specs), context())
    assert labels(cards) == [later.label]  # the label of the rule on the first card says when to draw it
    assert "suggestions" in cards[0] and cards[0]["source"]["topic"]["code"] == "level"


def test_a_dose_suggestion_needs_the_composer_to_agree_and_a_draft() -> None:
    apply_spec = spec("R-1", "dose", suggestions=(APPLY,))
    assert labels(build_cards(decision(apply_spec, dose=DoseDecision("keep", 400.0, 24, ())), context())) == []
    changed = decision(apply_spec, dose=DoseDecision("change", 300.0, 24, ()))
    assert labels(build_cards(changed, context())) == []  # patient-view: no draft to change
    assert "**Recommended dose:** 300 mg once daily" in build_cards(changed, context())[0]["detail"]


def test_ids_come_from_hook_instance_topic_and_action_not_rule_ids() -> None:
    dose = DoseDecision("change", 300.0, 24, ())
    one = build_cards(decision(spec("R-1", "dose", suggestions=(APPLY,)), dose=dose), context(draft(TABLET_100)))
    other = build_cards(decision(spec("R-9", "dose", suggestions=(APPLY,)), dose=dose), context(draft(TABLET_100)))
    assert one[0]["uuid"] == other[0]["uuid"]
    assert one[0]["suggestions"][0]["uuid"] == other[0]["suggestions"][0]["uuid"]
    elsewhere = build_cards(
        decision(spec("R-1", "dose", suggestions=(APPLY,)), dose=dose),
        replace(context(draft(TABLET_100)), hook_instance="hook-2"),
    )
    assert elsewhere[0]["uuid"] != one[0]["uuid"]


def test_detail_stays_within_15_lines_and_keeps_dose_sources_and_also_lines(rule_set: RuleSet) -> None:
    long_text = "\n\n".join(f"Paragraph {i} of the rule text." for i in range(12))
    specs = [
        spec("R-1", "dose", "critical", detail=long_text, suggestions=(APPLY,)),
        *(spec(f"R-{i}", "dose", "warning") for i in range(2, 8)),
        spec("R-8", "level"),
        *(spec(f"R-{i}", f"IMA-T-{i}") for i in range(9, 14)),
    ]
    facts = {"renal.crcl": 36.6, "heme.anc": 1.2, "level.conc": 700.0, "regimen.daily_mg": 600.0, "patient.age": 70}
    cards = build_cards(
        decision(*specs, dose=DoseDecision("change", 400.0, 24, ()), facts=facts, used=dict.fromkeys(facts)),
        context(draft(TABLET_400), rule_set=rule_set),
    )
    for card in cards:
        assert len(card["detail"].splitlines()) <= MAX_DETAIL_LINES
        assert "**Sources:**" in card["detail"]
    assert "**Recommended dose:** 400 mg once daily: 1 x 400 mg tablet." in cards[0]["detail"]
    assert cards[0]["detail"].startswith("Paragraph 0 of the rule text.")
    # the level finding joins the card that changes the dose; IMA-T-9 and IMA-T-10 are cards; IMA-T-11..13 fold
    assert "R-8 finding" not in "".join(c["detail"] for c in cards[1:])
    assert cards[2]["detail"].count("**Also:**") == 3


def test_key_facts_have_labels_units_and_readable_dates(rule_set: RuleSet) -> None:
    facts = {"renal.crcl": 36.6, "heme.anc": 0.1, "heme.anc_censored": "below", "tdm.sample_is_trough": True}
    recorded = {
        "renal.crcl": RecordedFact(36.6, "mL/min", datetime(2026, 11, 23, 8, 30, tzinfo=UTC)),
        "heme.anc": RecordedFact(0.1, "10*9/L", datetime(2026, 11, 20, tzinfo=UTC)),
    }
    made = decision(spec("R-1", "level"), facts=facts, used=dict.fromkeys(facts))
    (card,) = build_cards(made, context(rule_set=rule_set, recorded=recorded))
    assert "- Creatinine clearance: 36.6 mL/min (23 Nov 2026 08:30)" in card["detail"]
    assert "- Neutrophils (ANC): <0.1 x10^9/L (20 Nov 2026)" in card["detail"]
    for internal in ("renal.crcl", "+00:00", "tdm.sample_is_trough", "_censored", "R-1", "§", "clinical-rules.md"):
        assert internal not in card["detail"]
    converted = {"heme.anc": RecordedFact(0.1, "10*9/L", datetime(2026, 11, 20, tzinfo=UTC), "100 /uL <b>")}
    (card,) = build_cards(made, context(rule_set=rule_set, recorded=converted))
    assert "- Neutrophils (ANC): <0.1 x10^9/L (reported as 100 /uL b; 20 Nov 2026)" in card["detail"]
    zurich = build_cards(made, context(rule_set=rule_set, recorded=recorded, display_zone="Europe/Zurich"))
    assert "(23 Nov 2026 09:30 CET)" in zurich[0]["detail"]


def test_the_old_facts_table_composition_and_evidence_notes_are_gone() -> None:
    dose = DoseDecision("change", 300.0, 24, ())
    (card,) = build_cards(decision(spec("R-1", "dose", suggestions=(APPLY,)), dose=dose), context(draft(TABLET_100)))
    for gone in ("Facts used", "How the dose was composed", "check it", "Rule R-1", "| fact |", "(label)"):
        assert gone not in card["detail"]
    assert "**Sources:** Gleevec US prescribing information, Renal Impairment; Local policy" in card["detail"]


@pytest.mark.parametrize(
    ("citation", "short"),
    [
        (
            "Gleevec (imatinib) US prescribing information, §2.14 Table 1 (ANC thresholds)",
            "Gleevec US prescribing information",
        ),
        (
            "Gleevec (imatinib) US prescribing information, How Supplied (100 mg) and §2.1",
            "Gleevec US prescribing information, How Supplied",
        ),
        ("CTCAE v5 grading (grade 3 = severe); Gleevec USPI §2.2 and §2.13", "CTCAE v5 grading; Gleevec USPI"),
        ("clinical-rules.md §9.1 (a; b) and §5.1 (c)", "Local policy"),
        ("Local policy - no re-escalation within policy.reescalation_window_days", "Local policy"),
        (
            "Imatinib TDM indications (organ impairment); exposure ~45% (V [S9])",
            "Imatinib TDM indications; exposure ~45%",
        ),
    ],
)
def test_short_citations(citation: str, short: str) -> None:
    assert short_citation(citation) == short


def test_readable_time() -> None:
    from zoneinfo import ZoneInfo

    assert readable_time(datetime(2026, 11, 25, 8, 0, tzinfo=UTC), ZoneInfo("UTC")) == "25 Nov 2026 08:00"
    assert readable_time(datetime(2026, 11, 5, tzinfo=UTC), ZoneInfo("UTC")) == "5 Nov 2026"


def test_findings_that_differ_only_in_their_reason_are_one_line() -> None:
    same = [
        "Imatinib level recommended (CYP3A4 interacting drug): trough just before the next dose, at steady state",
        "Strong CYP3A4 inducer carbamazepine: avoid",
        "Imatinib level recommended (CrCl 34.8 mL/min, renal impairment): trough before the next dose",
    ]
    assert merge_reasons(same) == [
        "Imatinib level recommended (CYP3A4 interacting drug; CrCl 34.8 mL/min, renal impairment): trough just "
        "before the next dose, at steady state",
        "Strong CYP3A4 inducer carbamazepine: avoid",
    ]
    different_heads = ["Trough below target (CML): raise", "Level recommended (CML): draw"]
    assert merge_reasons(different_heads) == different_heads
    nested = ["Level (drug (brand)): draw", "Level (renal): draw"]  # a name with parentheses is not taken apart
    assert merge_reasons(nested) == nested
    assert merge_reasons(["A (x): do", "A (x): do"]) == ["A (x): do"]  # the same finding twice is one line
