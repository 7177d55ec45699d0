"""Dose composer: withhold wins, set/step, factors, lowest cap, tablet rounding never past a cap."""

from __future__ import annotations

import pytest

from cds.engine.compose import DosePolicy, compose_dose
from cds.engine.model import DoseEffect

POLICY = DosePolicy(
    ladder_mg=(100, 200, 300, 400, 600, 800), tablet_step_mg=100, label_max_daily_mg=800, twice_daily_from_mg=800
)


def compose(base: float | None, *effects: DoseEffect, interval: float = 24) -> tuple[str, float | None, int | None]:
    decision = compose_dose([(f"R{i}", e) for i, e in enumerate(effects)], base, interval, POLICY)
    return decision.action, decision.daily_mg, decision.interval_h


def test_no_effects_means_no_dose_decision() -> None:
    assert compose(400) == ("none", None, None)


def test_withhold_wins_over_everything() -> None:
    assert (
        compose(400, DoseEffect(factor=1.5), DoseEffect(withhold=True), DoseEffect(set_daily_mg=300))[0] == "withhold"
    )


def test_strong_inducer_then_moderate_renal_cap() -> None:
    # x1.5 (inducer) on 400 -> 600, then the moderate-renal ceiling 400 wins: the dose stays, explained
    decision = compose_dose(
        [("INDUCER", DoseEffect(factor=1.5)), ("RENAL", DoseEffect(max_daily_mg=400))], 400, 24, POLICY
    )
    assert (decision.action, decision.daily_mg) == ("keep", 400)
    assert [s.rule_id for s in decision.steps] == [None, "INDUCER", "RENAL"]
    assert compose(300, DoseEffect(factor=1.5), DoseEffect(max_daily_mg=400)) == ("change", 400, 24)


def test_factor_then_rounding_to_whole_tablets() -> None:
    assert compose(400, DoseEffect(factor=0.75)) == ("change", 300, 24)
    assert compose(600, DoseEffect(factor=0.75)) == ("change", 400, 24)  # 450: a tie goes to the lower dose
    assert compose(300, DoseEffect(factor=1.5)) == ("change", 500, 24)  # "at least 50% more": 450 -> 500
    assert compose(300, DoseEffect(factor=1.5), DoseEffect(max_daily_mg=450)) == ("change", 400, 24)  # not past a cap
    assert compose(400, DoseEffect(factor=1.5), DoseEffect(factor=0.75)) == ("keep", 400, 24)  # mixed: 450 -> 400


def test_rounding_never_goes_past_a_cap() -> None:
    assert compose(500, DoseEffect(factor=1.3), DoseEffect(max_daily_mg=640)) == (
        "change",
        600,
        24,
    )  # 650 -> 640 -> 600


def test_800_is_given_twice_daily_and_the_label_maximum_caps() -> None:
    assert compose(600, DoseEffect(step=1)) == ("change", 800, 12)
    assert compose(600, DoseEffect(factor=2)) == ("change", 800, 12)


@pytest.mark.parametrize(
    ("base", "step", "expected"),
    [(400, -1, 300), (600, -1, 400), (800, -1, 600), (400, 1, 600), (500, -1, 400), (100, -1, 100), (800, 1, 800)],
)
def test_ladder_steps(base: float, step: int, expected: float) -> None:
    assert compose(base, DoseEffect(step=step))[1] == expected


def test_disagreeing_steps_take_the_most_conservative_and_sets_the_lowest() -> None:
    assert compose(400, DoseEffect(step=1), DoseEffect(step=-1))[1] == 300
    assert compose(400, DoseEffect(set_daily_mg=600), DoseEffect(set_daily_mg=300))[1] == 300


def test_unchanged_dose_is_keep() -> None:
    assert compose(400, DoseEffect(max_daily_mg=600)) == ("keep", 400, 24)
    assert compose(800, DoseEffect(max_daily_mg=800), interval=12) == ("keep", 800, 12)


def test_effects_without_a_base_dose_are_not_applied_but_explained() -> None:
    decision = compose_dose([("R1", DoseEffect(factor=0.5))], None, None, POLICY)
    assert decision.action == "none" and "no proposed or current daily dose" in decision.steps[0].text
    assert compose(None, DoseEffect(set_daily_mg=300)) == ("change", 300, 24)


def test_every_step_names_its_rule() -> None:
    decision = compose_dose(
        [("IMA-A", DoseEffect(factor=1.5)), ("IMA-B", DoseEffect(max_daily_mg=400))], 400, 24, POLICY
    )
    texts = [s.text for s in decision.steps]
    assert any("IMA-A" in t for t in texts) and any("IMA-B" in t for t in texts)


def bases(draft: float, *effects: DoseEffect, **known: float) -> tuple[str, float | None, int | None]:
    named = {f"regimen.{k}": v for k, v in known.items()}
    decision = compose_dose([(f"R{i}", e) for i, e in enumerate(effects)], draft, 24, POLICY, named)
    return decision.action, decision.daily_mg, decision.interval_h


RENAL_START = DoseEffect(factor=0.5, of="regimen.standard_start_mg", max_daily_mg=400)
HEPATIC_START = DoseEffect(factor=0.75, of="regimen.standard_start_mg")
INDUCER = DoseEffect(factor=1.5, of="regimen.standard_start_mg")
RESUME_STEP = DoseEffect(step=-1, of="regimen.pre_hold_mg")


@pytest.mark.parametrize("draft", [0, 100, 200, 300, 400, 600, 800])
def test_a_factor_applies_to_its_base_whatever_the_draft(draft: float) -> None:
    assert bases(draft, RENAL_START, standard_start_mg=400)[1] == 200
    assert bases(draft, HEPATIC_START, standard_start_mg=400)[1] == 300
    assert bases(draft, RENAL_START, INDUCER, standard_start_mg=400)[1] == 300
    assert bases(draft, RESUME_STEP, pre_hold_mg=800)[1:] == (600, 24)


def test_a_draft_already_at_the_target_is_kept() -> None:
    assert bases(200, RENAL_START, standard_start_mg=400) == ("keep", 200, 24)
    assert bases(300, HEPATIC_START, standard_start_mg=400) == ("keep", 300, 24)
    assert bases(300, RESUME_STEP, pre_hold_mg=400) == ("keep", 300, 24)
    assert bases(300, RENAL_START, INDUCER, standard_start_mg=400) == ("keep", 300, 24)


def test_an_unknown_base_is_named_and_never_replaced_by_the_draft() -> None:
    decision = compose_dose([("IMA-R", RENAL_START)], 600, 24, POLICY, {})
    assert (decision.action, decision.daily_mg) == ("change", 400)  # the rule's cap still holds
    assert any("regimen.standard_start_mg is not known" in s.text and "IMA-R" in s.text for s in decision.steps)
    assert bases(300, RESUME_STEP) == ("keep", 300, 24)


def test_a_set_dose_is_capped_by_a_fact() -> None:
    resume = DoseEffect(set_daily_mg=400, max_of="regimen.pre_hold_mg")
    assert bases(400, resume, pre_hold_mg=200) == ("change", 200, 24)
    assert bases(600, resume, pre_hold_mg=600) == ("change", 400, 24)
    assert bases(400, resume) == ("keep", 400, 24)


def test_different_bases_take_the_lowest_and_say_so() -> None:
    decision = compose_dose(
        [("A", INDUCER), ("B", RESUME_STEP)],
        400,
        24,
        POLICY,
        {"regimen.standard_start_mg": 600, "regimen.pre_hold_mg": 400},
    )
    assert decision.daily_mg == 500  # from the lower base 400: down a step to 300, x 1.5 = 450, an increase rounds up
    assert any("different dose bases" in s.text for s in decision.steps)
