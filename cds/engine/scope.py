"""The scope stage: who the adult dose rules were validated for.

Rules that derive a ``scope.*`` fact (rules/imatinib/scope.yaml) run first, before every other stage, and read
only input facts. What they derive stops other rules from acting, whatever family they are in:

* ``scope.no_dose_advice`` (children: the label doses by body surface area) - no rule that suggests a dose in mg
  acts (a dose effect other than withholding, or an apply-dose suggestion);
* ``scope.no_dose_increase`` (pregnancy, breastfeeding) - no rule that raises the dose acts (it derives
  ``plan.dose_increase``, multiplies by more than 1, steps up the ladder or shows the PK model's proposed dose).

Withholding stays: the label's hold rules apply to every patient. A stopped rule is kept in the decision's
``suppressed`` list with the scope rules that stopped it, so the trace shows every decision the scope made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cds.engine import conditions as c
from cds.engine.model import Rule
from cds.engine.vocabulary import Vocabulary
from cds.errors import RuleError

SCOPE_PREFIX = "scope."
NO_DOSE_ADVICE = "scope.no_dose_advice"
NO_DOSE_INCREASE = "scope.no_dose_increase"
DOSE_INCREASE = "plan.dose_increase"
# facts that are themselves a proposed dose: a rule that reads one shows an mg dose (e.g. the PK model's proposal,
# which is above the current dose whenever the trough is below target)
PROPOSED_DOSE_FACTS = frozenset({"pk.proposed_daily_mg"})


def is_scope_rule(rule: Rule) -> bool:
    return any(d.fact.startswith(SCOPE_PREFIX) for d in rule.derive)


def check_scope_rules(rules: Sequence[Rule], vocabulary: Vocabulary) -> None:
    """Scope rules run before any other rule, so they may read only facts given as input."""
    for rule in rules:
        if not is_scope_rule(rule):
            continue
        derived = sorted(f for f in c.facts_of(rule.when) if f in vocabulary and vocabulary[f].derived)
        if derived:
            raise RuleError(f"{rule.id}: a scope rule runs first and cannot read derived facts ({', '.join(derived)})")


def _proposes_dose(rule: Rule) -> bool:
    return not PROPOSED_DOSE_FACTS.isdisjoint(c.facts_of(rule.when))


def gives_dose_advice(rule: Rule) -> bool:
    dose = rule.dose
    suggests = any(s.action == "apply-dose" for s in rule.card.suggestions) if rule.card else False
    suggests = suggests or _proposes_dose(rule)
    if dose is None:
        return suggests
    only_withholds = dose.withhold and dose.factor is None and dose.set_daily_mg is None and dose.step is None
    return suggests or not only_withholds or dose.max_daily_mg is not None


def raises_dose(rule: Rule) -> bool:
    if _proposes_dose(rule) or any(d.fact == DOSE_INCREASE and d.value is True for d in rule.derive):
        return True
    dose = rule.dose
    return dose is not None and ((dose.factor or 1) > 1 or (dose.step or 0) > 0)


@dataclass(frozen=True)
class ScopeRole:
    """What a rule is to the scope stage, worked out once when the rules are loaded."""

    sets_scope: bool
    gives_dose_advice: bool
    raises_dose: bool


def role_of(rule: Rule) -> ScopeRole:
    return ScopeRole(is_scope_rule(rule), gives_dose_advice(rule), raises_dose(rule))


def stopped_by(role: ScopeRole, facts: Mapping[str, c.FactValue]) -> str | None:
    """The scope fact that keeps a rule of this role from acting, or None."""
    if role.sets_scope:
        return None
    no_advice, no_increase = facts.get(NO_DOSE_ADVICE) is True, facts.get(NO_DOSE_INCREASE) is True
    if no_advice and role.gives_dose_advice:
        return NO_DOSE_ADVICE
    if (no_advice or no_increase) and role.raises_dose:
        return NO_DOSE_INCREASE if no_increase else NO_DOSE_ADVICE
    return None
