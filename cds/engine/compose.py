"""Dose composer: merges the dose effects of all fired rules into one explained recommendation.

Order (deterministic, independent of how rules are listed within a step):
withhold wins; otherwise the reference dose - the set dose (lowest if several), else the dose base the rules
name (`of`: the recommended starting dose for the indication, the dose before a hold; lowest if several),
else the proposed/current dose - stepped on the ladder, times every factor, then the lowest cap (including
the label maximum and caps read from facts), then rounding to what 100 mg and 400 mg tablets can give (up
after an increase, so "at least 50% more" holds), never past a cap. 800 mg/day is given as 400 mg twice daily.

Label percentages and steps apply to a base, never to the draft: a rule says "target = base x factor", so a
draft already at the target is kept, and a suggestion accepted and signed again does not change the dose a
second time. An effect whose base is not known is not applied, and the steps say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from cds.engine.model import DoseEffect
from cds.engine.policy import Policy
from cds.engine.render import format_value


@dataclass(frozen=True)
class DoseStep:
    text: str
    rule_id: str | None = None
    arithmetic: str = ""  # the step as the card shows it ("400 mg/day", "x 0.5", "capped at 400"); "" for notes


@dataclass(frozen=True)
class DoseDecision:
    action: str  # withhold | change | keep | none
    daily_mg: float | None
    interval_h: int | None
    steps: tuple[DoseStep, ...]


@dataclass(frozen=True)
class DosePolicy:
    ladder_mg: tuple[float, ...]
    tablet_step_mg: float
    label_max_daily_mg: float
    twice_daily_from_mg: float

    @classmethod
    def from_policy(cls, policy: Policy) -> DosePolicy:
        return cls(
            ladder_mg=tuple(float(v) for v in policy.get("dose_ladder_mg", [100, 200, 300, 400, 600, 800])),
            tablet_step_mg=float(_mg(policy, "tablet_step_mg", 100)),
            label_max_daily_mg=float(_mg(policy, "label_max_daily_mg", 800)),
            twice_daily_from_mg=float(_mg(policy, "twice_daily_from_mg", 800)),
        )


def _mg(policy: Policy, name: str, default: float) -> float:
    value = policy.get(name)
    return default if value is None else policy.quantity(name).value


def compose_dose(
    effects: Sequence[tuple[str, DoseEffect]],
    base_daily_mg: float | None,
    base_interval_h: float | None,
    policy: DosePolicy,
    bases: Mapping[str, float] | None = None,
) -> DoseDecision:
    """``bases``: the values of the dose-base facts the effects name (`of`, `max_of`), when known."""
    if not effects:
        return DoseDecision("none", None, None, ())
    withholds = [rid for rid, e in effects if e.withhold]
    if withholds:
        reasons = [
            DoseStep(f"Withhold imatinib ({rid}); withholding overrides every other effect", rid) for rid in withholds
        ]
        return DoseDecision("withhold", None, None, tuple(reasons))
    known = dict(bases or {})
    steps: list[DoseStep] = []
    applied = _applicable(effects, known, steps)
    dose = _reference_dose(applied, base_daily_mg, known, policy, steps)
    if dose is None:
        return DoseDecision("none", None, None, tuple(steps))
    for rid, effect in applied:
        if effect.factor is not None:
            dose *= effect.factor
            text = f"x {format_value(effect.factor)} ({rid}) -> {format_value(dose)} mg/day"
            steps.append(DoseStep(text, rid, f"x {format_value(effect.factor)}"))
    cap, cap_rule = _lowest_cap(applied, known, policy)
    if dose > cap:
        dose = cap
        text = f"capped at {format_value(cap)} mg/day ({cap_rule or 'label maximum'})"
        steps.append(DoseStep(text, cap_rule, f"capped at {format_value(cap)}"))
    factors = [e.factor for _, e in applied if e.factor is not None]
    # only a pure increase rounds up; with a reduction in play the conservative tie-break stands
    increase = bool(factors) and all(f > 1 for f in factors)
    dose = _round_to_tablets(dose, cap, policy, steps, up=increase)
    interval = 12 if dose >= policy.twice_daily_from_mg else 24
    if interval == 12:
        steps.append(DoseStep(f"{format_value(dose)} mg/day is given as {format_value(dose / 2)} mg twice daily"))
    unchanged = base_daily_mg is not None and math.isclose(dose, base_daily_mg) and interval == (base_interval_h or 24)
    return DoseDecision("keep" if unchanged else "change", dose, interval, tuple(steps))


def _applicable(
    effects: Sequence[tuple[str, DoseEffect]], known: Mapping[str, float], steps: list[DoseStep]
) -> list[tuple[str, DoseEffect]]:
    """The effects, without the factor or step of one whose dose base is not known: that is named in the steps,
    never applied to the draft instead (its caps still hold)."""
    kept = []
    for rid, effect in effects:
        if effect.of is not None and effect.of not in known:
            what = "factor" if effect.factor is not None else "step"
            steps.append(DoseStep(f"{effect.of} is not known, so the {what} of {rid} is not applied", rid))
            effect = replace(effect, factor=None, step=None, of=None)
        kept.append((rid, effect))
    return kept


def _reference_dose(
    effects: Sequence[tuple[str, DoseEffect]],
    draft: float | None,
    known: Mapping[str, float],
    policy: DosePolicy,
    steps: list[DoseStep],
) -> float | None:
    sets = [(e.set_daily_mg, rid) for rid, e in effects if e.set_daily_mg is not None]
    named = sorted({(known[e.of], e.of, rid) for rid, e in effects if e.of is not None})
    if sets:
        value, rid = min(sets)
        steps.append(DoseStep(f"set to {format_value(value)} mg/day ({rid})", rid))
        if len(sets) > 1:
            steps.append(DoseStep("several rules set a dose; the lowest is taken"))
        return value
    if named:
        value, fact, rid = named[0]
        text = f"start from {format_value(value)} mg/day, the {fact} ({rid}), not the ordered dose"
        steps.append(DoseStep(text, rid, f"{format_value(value)} mg/day"))
        if len({f for _, f, _ in named}) > 1:
            steps.append(DoseStep("rules name different dose bases; the lowest is taken"))
        reference = value
    elif draft is None:
        if effects:
            steps.append(DoseStep("no proposed or current daily dose to adjust; dose effects not applied"))
        return None
    else:
        steps.append(DoseStep(f"start from {format_value(draft)} mg/day (proposed or current dose)"))
        reference = draft
    moves = [(e.step, rid) for rid, e in effects if e.step is not None]
    if not moves:
        return reference
    move, rid = min(moves)  # the most conservative step when rules disagree
    stepped = _ladder_step(reference, move, policy.ladder_mg)
    steps.append(
        DoseStep(
            f"{'up' if move > 0 else 'down'} {abs(move)} ladder step(s) ({rid}) -> {format_value(stepped)} mg/day",
            rid,
        )
    )
    return stepped


def _ladder_step(dose: float, move: int, ladder: Sequence[float]) -> float:
    below = [v for v in ladder if v < dose]
    above = [v for v in ladder if v > dose]
    if move > 0:
        return above[min(move, len(above)) - 1] if above else dose
    return below[-min(-move, len(below))] if below else dose


def _lowest_cap(
    effects: Sequence[tuple[str, DoseEffect]], known: Mapping[str, float], policy: DosePolicy
) -> tuple[float, str | None]:
    caps = [(e.max_daily_mg, rid) for rid, e in effects if e.max_daily_mg is not None]
    caps += [(known[e.max_of], rid) for rid, e in effects if e.max_of is not None and e.max_of in known]
    cap, rule = min(caps) if caps else (policy.label_max_daily_mg, None)
    if cap >= policy.label_max_daily_mg:
        return policy.label_max_daily_mg, None
    return cap, rule


def _round_to_tablets(dose: float, cap: float, policy: DosePolicy, steps: list[DoseStep], *, up: bool) -> float:
    unit = policy.tablet_step_mg
    lower, upper = math.floor(dose / unit) * unit, math.ceil(dose / unit) * unit
    # An increase "by at least x%" rounds up; otherwise the nearest whole-tablet dose, a tie going to the
    # lower dose. Never above the cap; never zero.
    closer_above = (upper - dose) < (dose - lower)
    rounded = upper if (up or closer_above) and upper <= cap else lower
    rounded = max(rounded, unit)
    if not math.isclose(rounded, dose):
        text = f"rounded to {format_value(rounded)} mg/day (100 mg and 400 mg tablets)"
        steps.append(DoseStep(text, None, f"rounded to {format_value(rounded)}"))
    return rounded
