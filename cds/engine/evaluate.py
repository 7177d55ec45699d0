"""``RuleEngine.evaluate(facts, hook) -> Decision``: stages, hit policy, derived facts, dose, cards."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any

from cds.engine import conditions as c
from cds.engine.compile import (
    Membership,
    MembershipKey,
    chunk_rules,
    compile_chunks,
    membership_key,
    memberships,
    resolved_in_python,
)
from cds.engine.compose import DoseDecision, DosePolicy, compose_dose
from cds.engine.decision import CardSpec, Decision, FiredRule, SuppressedRule
from cds.engine.document import DocumentShape, normalise_facts, quantise
from cds.engine.model import Rule
from cds.engine.render import render
from cds.engine.ruleset import RuleSet
from cds.engine.schema import HOOKS
from cds.engine.scope import check_scope_rules, role_of, stopped_by
from cds.errors import InvalidInput

Matcher = Callable[[Mapping[str, c.FactValue]], list[str]]


class _Chunk:
    """What one compiled durable ruleset can see: the facts and value sets its rules read, and the fact sets
    of which one must be present for any of its rules to fire."""

    def __init__(self, rules: Sequence[Rule], sets: Mapping[MembershipKey, Membership]) -> None:
        needs = {c.required_facts(r.when) for r in rules}
        self.alternatives = [a for a in needs if not any(b < a for b in needs)]
        reads = dict.fromkeys(f for r in rules for f in c.facts_of(r.when))
        used = {membership_key(leaf) for r in rules for leaf in c.leaves(c.to_nnf(r.when)) if resolved_in_python(leaf)}
        self.shape = DocumentShape(reads, [m for k, m in sets.items() if k in used])

    def can_fire(self, present: Set[str]) -> bool:
        return any(a <= present for a in self.alternatives)


class RuleEngine:
    """Compiled once per rule set; ``evaluate`` is safe to call from several threads."""

    def __init__(self, rule_set: RuleSet, *, backend: str = "durable") -> None:
        self.rule_set = rule_set
        self.dose_policy = DosePolicy.from_policy(rule_set.policy)
        self._file_order = {f.meta.id: i for i, f in enumerate(rule_set.files)}
        self._first_hit_files = frozenset(f.meta.id for f in rule_set.files if f.meta.hit_policy == "first")
        rules = rule_set.rules
        check_scope_rules(rules, rule_set.vocabulary)
        self._sets = memberships(rules)
        self._reads = {r.id: c.facts_of(r.when) for r in rules}
        self._scope_roles = {r.id: role_of(r) for r in rules}
        self._plan: dict[str, list[tuple[list[Rule], Matcher]]] = {
            hook: self._stages_for(hook, rules, backend) for hook in HOOKS
        }

    def _stages_for(self, hook: str, rules: Sequence[Rule], backend: str) -> list[tuple[list[Rule], Matcher]]:
        for_hook = [r for r in rules if hook in r.hooks]
        plan = []
        # the scope stage runs first: what it derives decides which later rules may act (cds/engine/scope.py)
        scope = [r for r in for_hook if self._scope_roles[r.id].sets_scope]
        if scope:
            plan.append((scope, self._matcher(f"{hook}/scope", scope, backend)))
            for_hook = [r for r in for_hook if not self._scope_roles[r.id].sets_scope]
        for stage in sorted({self.rule_set.stage_of[r.id] for r in for_hook}):
            members = [r for r in for_hook if self.rule_set.stage_of[r.id] == stage]
            plan.append((members, self._matcher(f"{hook}/s{stage}", members, backend)))
        return plan

    def _matcher(self, label: str, rules: list[Rule], backend: str) -> Matcher:
        if backend == "reference":
            return lambda facts: [r.id for r in rules if c.truth(r.when, facts) is True]
        from cds.engine.durable_adapter import DurableMatcher

        durable = DurableMatcher(f"imatinib-{self.rule_set.digest[:12]}/{label}", compile_chunks(rules, self._sets))
        chunks = [_Chunk(members, self._sets) for members in chunk_rules(rules)]

        # Both cuts are exact, because every compiled leaf reads only its own fact and is $ex-guarded: a
        # chunk none of whose rules has its required facts present cannot fire, so it is not asserted; and
        # facts no rule of a chunk reads cannot change its matches, so they are left out of its document
        # (less JSON to write and parse per assert and per fired action).
        def match(facts: Mapping[str, c.FactValue]) -> list[str]:
            present = facts.keys()
            return durable.match_chunks({i: k.shape.build(facts) for i, k in enumerate(chunks) if k.can_fire(present)})

        return match

    @property
    def memberships(self) -> Sequence[Membership]:
        return list(self._sets.values())

    def evaluate(self, facts: Mapping[str, Any], hook: str) -> Decision:
        if hook not in self._plan:
            raise InvalidInput("hook", f"unknown hook {hook!r}")
        working = normalise_facts(facts, self.rule_set.vocabulary)
        given = set(working)
        fired: list[tuple[Rule, FiredRule]] = []
        suppressed: list[SuppressedRule] = []
        warnings: list[str] = []
        for rules, matcher in self._plan[hook]:
            hits = set(matcher(working))
            for rule in self._apply_hit_policy([r for r in rules if r.id in hits]):
                because = stopped_by(self._scope_roles[rule.id], working)
                if because is not None:
                    by = tuple(f.rule_id for _, f in fired if because in f.derived)
                    suppressed.append(SuppressedRule(rule.id, because, by))
                    continue
                used = {name: working.get(name) for name in self._reads[rule.id]}
                derived = self._derive(rule, working, given, warnings)
                stage = self.rule_set.stage_of[rule.id]
                fired.append(
                    (rule, FiredRule(rule.id, rule.title, rule.ruleset_id, rule.ruleset_version, stage, used, derived))
                )
        dose = self._dose([r for r, _ in fired], working)
        cards = tuple(self._card(rule, working) for rule, _ in fired if rule.card is not None)
        return Decision(
            hook=hook,
            ruleset_digest=self.rule_set.digest,
            ruleset_version=self.rule_set.version,
            facts=dict(working),
            derived={k: v for k, v in working.items() if k not in given},
            fired=tuple(f for _, f in fired),
            dose=dose,
            cards=cards,
            warnings=tuple(warnings),
            suppressed=tuple(suppressed),
        )

    def _apply_hit_policy(self, hits: list[Rule]) -> list[Rule]:
        ordered = sorted(hits, key=lambda r: (self._file_order[r.ruleset_id], r.row))
        taken: set[str] = set()
        selected = []
        for rule in ordered:
            if rule.ruleset_id in self._first_hit_files and rule.ruleset_id in taken:
                continue
            taken.add(rule.ruleset_id)
            selected.append(rule)
        return selected

    @staticmethod
    def _derive(
        rule: Rule, working: dict[str, c.FactValue], given: set[str], warnings: list[str]
    ) -> dict[str, c.FactValue]:
        applied: dict[str, c.FactValue] = {}
        for d in rule.derive:
            value = working.get(d.from_fact) if d.from_fact else d.value
            if value is None:
                continue
            if d.from_fact and c.censor_companion(d.from_fact) in working:
                # a bound is not a value: copying it would drop the side it lies on
                side = working[c.censor_companion(d.from_fact)]
                warnings.append(f"{rule.id} would set {d.fact} from {d.from_fact}; not done, it is censored ({side})")
                continue
            if d.fact in working and working[d.fact] != value:
                source = "input" if d.fact in given else "an earlier rule"
                warnings.append(f"{rule.id} would set {d.fact}={value!r}; kept {working[d.fact]!r} from {source}")
                continue
            working[d.fact] = applied[d.fact] = quantise(value)
        return applied

    def _dose(self, rules: Sequence[Rule], facts: Mapping[str, c.FactValue]) -> DoseDecision:
        effects = [(r.id, r.dose) for r in rules if r.dose is not None]
        base = facts.get("regimen.daily_mg")
        interval = facts.get("regimen.interval_h")
        named = {n for _, e in effects for n in (e.of, e.max_of) if n is not None}
        bases = {n: float(v) for n in named if isinstance(v := facts.get(n), float) and v > 0}
        return compose_dose(
            effects,
            float(base) if isinstance(base, float) else None,
            float(interval) if isinstance(interval, float) else None,
            self.dose_policy,
            bases,
        )

    def _card(self, rule: Rule, facts: Mapping[str, c.FactValue]) -> CardSpec:
        assert rule.card is not None
        policy = self.rule_set.policy
        return CardSpec(
            rule_id=rule.id,
            indicator=rule.card.indicator,
            summary=render(rule.card.summary, facts, policy),
            detail=render(rule.card.detail, facts, policy),
            suggestions=rule.card.suggestions,
            evidence=rule.evidence,
            ruleset_id=rule.ruleset_id,
            ruleset_version=rule.ruleset_version,
            topic=rule.card.topic,
        )
