"""Static audit of a rule set: rules that can never fire, dose conflicts without stated precedence, unused codes.

* **Unreachable rules.** Each condition is put in negation normal form and expanded into conjunctions of leaves
  (disjunctive normal form). A conjunction is contradictory when, for one fact, its leaves leave no value:
  intervals intersected with the fact's plausible range, code sets intersected with the declared values (for a
  derived fact: the values rules can derive), ``present`` against ``missing``. A rule whose every conjunction is
  contradictory can never fire. A rule that is not provably unreachable is then searched for a firing example.
* **Dose conflicts.** For every pair of rules sharing a hook whose dose effects pull in opposite directions
  without a precedence the composer states (an increase against a decrease, a set dose against a step or a
  factor, two different set doses), the audit searches the fact space for a document on which both fire: it
  picks a conjunction of each rule, adds a conjunction of a rule that derives each derived fact they read,
  solves the per-fact constraints by interval reasoning, and confirms the candidate with the reference engine.
  Withholding (withhold wins) and ceilings (caps apply after every increase) are the composer's stated order.
* **Probable duplicates.** Two rules of one file (family) that read the same facts, act the same way (a card of
  the same topic and indicator, or the same derived facts without a card) and can fire on the same document: a
  new rule that repeats an existing one, usually with a slightly different threshold.
* **Unused codes.** Declared values of code facts that rules read but never test or derive, and terminology
  value sets whose facts no rule reads.

A finding is *explained* by a rule's ``audit_note``: for an unreachable rule, its own note; for a conflict or a
probable duplicate, a note of either rule that names the other rule's id; for an unused code, any note
containing ``fact=value`` (or the value set's name).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cds.engine import conditions as c
from cds.engine.evaluate import RuleEngine
from cds.engine.model import DoseEffect, Rule
from cds.engine.ruleset import RuleSet
from cds.engine.vocabulary import FactSpec, Vocabulary

MAX_CONJUNCTS = 512
ATTEMPTS_PER_RULE = 150
ATTEMPTS_PER_PAIR = 300
MAX_DERIVATION_DEPTH = 8


@dataclass(frozen=True)
class Finding:
    kind: str  # unreachable | conflict | probable-duplicate | unused-code | unused-value-set
    subject: str  # rule id(s), fact=value or value-set name
    message: str
    file: str = ""
    line: int = 0
    rules: tuple[str, ...] = ()
    example: Mapping[str, c.FactValue] = field(default_factory=dict)
    explanation: str = ""

    @property
    def explained(self) -> bool:
        return bool(self.explanation)


@dataclass(frozen=True)
class AuditReport:
    findings: tuple[Finding, ...]
    rules_checked: int
    pairs_checked: int
    resolved_by_composer: tuple[tuple[str, str, str], ...]  # (rule, rule, how) co-firing, resolved by design
    notes: tuple[str, ...] = ()

    @property
    def unexplained(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.explained)


# --- condition algebra ------------------------------------------------------------------------------


def dnf(node: c.Node) -> list[list[c.Leaf]] | None:
    """Disjunctive normal form of ``node`` as lists of leaves; None when it would exceed MAX_CONJUNCTS."""
    return _dnf(c.to_nnf(node))


def _dnf(node: c.Node) -> list[list[c.Leaf]] | None:
    if isinstance(node, c.AnyOf):
        out: list[list[c.Leaf]] = []
        for item in node.items:
            part = _dnf(item)
            if part is None:
                return None
            out += part
        return out if len(out) <= MAX_CONJUNCTS else None
    if isinstance(node, c.All):
        result: list[list[c.Leaf]] = [[]]
        for item in node.items:
            part = _dnf(item)
            if part is None or len(result) * len(part) > MAX_CONJUNCTS:
                return None
            result = [left + right for left in result for right in part]
        return result
    assert not isinstance(node, c.Not)  # NNF
    if isinstance(node, c.Censored):
        return [_censored_leaves(node)]
    return [[node]]


def _censored_leaves(node: c.Censored) -> list[c.Leaf]:
    """A censored test as plain leaves on the fact and its companion code (negated: the exact case, which
    is one way to satisfy it; the solver only needs one)."""
    if node.negated:
        return [c.Presence(node.fact, True), c.Presence(node.companion, False)]
    return [c.Presence(node.fact, True), c.InSet(node.companion, node.sides)]


@dataclass
class _Domain:
    """What one conjunction allows for one fact."""

    spec: FactSpec
    values: set[c.FactValue] | None  # allowed discrete values (None = open: numbers or open codes)
    low: float = -math.inf
    low_open: bool = False
    high: float = math.inf
    high_open: bool = False
    excluded: set[c.FactValue] = field(default_factory=set)
    present: bool | None = None  # None = either
    conflict: bool = False  # present and missing at once

    def add(self, leaf: c.Leaf) -> None:
        if isinstance(leaf, c.Presence):
            if self.present is None:
                self.present = leaf.present
            elif self.present != leaf.present:
                self.conflict = True
            return
        self.require_present()
        if isinstance(leaf, c.Censored):
            return  # never reached: _dnf writes it as plain leaves
        if isinstance(leaf, c.InSet):
            self._restrict(set(leaf.values), negated=leaf.negated)
        elif leaf.op in ("eq", "ne"):
            self._restrict({leaf.value}, negated=leaf.op == "ne")
        else:
            self._bound(leaf.op, float(leaf.value))

    def require_present(self) -> None:
        if self.present is False:
            self.conflict = True
        self.present = True

    def _restrict(self, values: set[c.FactValue], *, negated: bool) -> None:
        if self.spec.type == "number":
            if negated:
                self.excluded |= {float(v) for v in values}
            else:
                (value,) = values
                self._bound("gte", float(value))
                self._bound("lte", float(value))
            return
        if negated:
            self.excluded |= values
        elif self.values is None:
            self.values = set(values)
        else:
            self.values &= values

    def _bound(self, op: str, value: float) -> None:
        if op in ("gt", "gte"):
            opened = op == "gt"
            if value > self.low or (value == self.low and opened):
                self.low, self.low_open = value, opened
        else:
            opened = op == "lt"
            if value < self.high or (value == self.high and opened):
                self.high, self.high_open = value, opened

    def candidates(self) -> list[c.FactValue]:
        """Values this domain allows (a few representative ones for numbers); empty when contradictory."""
        if self.conflict:
            return []
        if self.spec.type == "number":
            return self._numbers()
        if self.values is None:
            return ["audit-value"] if self.spec.type != "boolean" else [True, False]
        return sorted((v for v in self.values if v not in self.excluded), key=str)

    def _numbers(self) -> list[c.FactValue]:
        low, high = self.low, self.high
        if low > high or (low == high and (self.low_open or self.high_open)):
            return []
        span = high - low
        step = min(max(span / 1000, 0.0001), 0.01) if span > 0 else 0.0
        picks = [
            low if not self.low_open else low + step,
            high if not self.high_open else high - step,
            round((low + high) / 2, 4),
        ]
        inside = [
            round(v, 4)
            for v in picks
            if (low < v or (v == low and not self.low_open)) and (v < high or (v == high and not self.high_open))
        ]
        return [v for v in dict.fromkeys(inside) if v not in self.excluded]


class _Space:
    """The fact space: plausible ranges, declared values, and the values rules can derive."""

    def __init__(self, rule_set: RuleSet) -> None:
        self.vocabulary: Vocabulary = rule_set.vocabulary
        self.rules = rule_set.rules
        self.derivers: dict[str, list[tuple[Rule, int]]] = {}
        for rule in self.rules:
            for i, d in enumerate(rule.derive):
                self.derivers.setdefault(d.fact, []).append((rule, i))
        self.dnfs = {rule.id: dnf(rule.when) for rule in self.rules}

    def domain(self, fact: str) -> _Domain:
        spec = self.vocabulary[fact]
        if spec.type == "number":
            dom = _Domain(spec, None)
            dom.low, dom.high = spec.low if spec.low is not None else -math.inf, spec.high or math.inf
            return dom
        values: set[c.FactValue] | None
        values = {True, False} if spec.type == "boolean" else set(spec.values) if spec.values else None
        if fact in self.derivers and spec.derived:
            literal = [r.derive[i].value for r, i in self.derivers[fact] if r.derive[i].from_fact is None]
            if all(r.derive[i].from_fact is None for r, i in self.derivers[fact]):
                values = {v for v in literal if v is not None}
        return _Domain(spec, values)

    def consistent(self, conjunct: Sequence[c.Leaf]) -> bool:
        return all(dom.candidates() for dom in self._domains(conjunct).values())

    def _domains(self, conjunct: Sequence[c.Leaf]) -> dict[str, _Domain]:
        domains: dict[str, _Domain] = {}
        for leaf in conjunct:
            domains.setdefault(leaf.fact, self.domain(leaf.fact)).add(leaf)
        return domains

    def is_input(self, fact: str) -> bool:
        """A fact the caller supplies: not derived by any rule (pk.* come from the estimator)."""
        return fact not in self.derivers


# --- witness search -----------------------------------------------------------------------------------


class _Searcher:
    def __init__(self, rule_set: RuleSet, seed: int) -> None:
        self.space = _Space(rule_set)
        self.engine = RuleEngine(rule_set, backend="reference")
        self.rng = random.Random(seed)
        self.stage_of = rule_set.stage_of
        self._relevant_cache: dict[tuple[str, ...], list[Rule]] = {}
        self._options: dict[str, list[list[c.Leaf]]] = {}

    def witness(self, targets: Sequence[Rule], hook: str, attempts: int) -> dict[str, c.FactValue] | None:
        if any(self.space.dnfs[r.id] is None for r in targets):
            return None
        for _ in range(attempts):
            leaves: list[c.Leaf] = []
            for rule in targets:
                leaves += self._pick(rule)
            facts = self._solve(self._expand(leaves, 0))
            if facts is None or not self._quick_fire(targets, facts):
                continue
            fired = set(self.engine.evaluate(facts, hook).fired_ids)
            if all(r.id in fired for r in targets):
                return facts
        return None

    def _quick_fire(self, targets: Sequence[Rule], facts: Mapping[str, c.FactValue]) -> bool:
        """Cheap pre-check: the targets and the rules deriving what they read, in stage order."""
        working = dict(facts)
        for rule in self._relevant(targets):
            if c.truth(rule.when, working) is True:
                for d in rule.derive:
                    value = working.get(d.from_fact) if d.from_fact else d.value
                    if value is not None and d.fact not in working:
                        working[d.fact] = value
        return all(c.truth(r.when, working) is True for r in targets)

    def _relevant(self, targets: Sequence[Rule]) -> list[Rule]:
        key = tuple(r.id for r in targets)
        if key not in self._relevant_cache:
            found: dict[str, Rule] = {}
            todo = list(targets)
            while todo:
                rule = todo.pop()
                if rule.id in found:
                    continue
                found[rule.id] = rule
                for fact in c.facts_of(rule.when):
                    todo += [r for r, _ in self.space.derivers.get(fact, ())]
            self._relevant_cache[key] = sorted(found.values(), key=lambda r: (self.stage_of[r.id], r.id))
        return self._relevant_cache[key]

    def _pick(self, rule: Rule) -> list[c.Leaf]:
        if rule.id not in self._options:
            conjuncts = self.space.dnfs[rule.id] or []
            self._options[rule.id] = [conj for conj in conjuncts if self.space.consistent(conj)]
        options = self._options[rule.id]
        return list(self.rng.choice(options)) if options else [c.Presence("__never__", True)]

    def _expand(self, leaves: list[c.Leaf], depth: int) -> list[c.Leaf]:
        """Replace leaves on rule-derived facts by a conjunction of a rule that derives a fitting value."""
        out: list[c.Leaf] = []
        for leaf in leaves:
            if leaf.fact == "__never__" or self.space.is_input(leaf.fact):
                out.append(leaf)
                continue
            if isinstance(leaf, c.Presence) and not leaf.present:
                continue  # hope no deriver fires; the engine confirms
            if depth >= MAX_DERIVATION_DEPTH:
                out.append(c.Presence("__never__", True))
                continue
            out += self._derive(leaf, depth)
        return out

    def _derive(self, leaf: c.Leaf, depth: int) -> list[c.Leaf]:
        choices = []
        for rule, i in self.space.derivers[leaf.fact]:
            d = rule.derive[i]
            if d.from_fact is not None:
                choices.append((rule, [_retarget(leaf, d.from_fact)]))
            elif isinstance(leaf, c.Presence) or c.truth(leaf, {leaf.fact: d.value}) is True:  # type: ignore[dict-item]
                choices.append((rule, []))
        if not choices:
            return [c.Presence("__never__", True)]
        rule, extra = self.rng.choice(choices)
        return self._expand([*self._pick(rule), *extra], depth + 1)

    def _solve(self, leaves: Sequence[c.Leaf]) -> dict[str, c.FactValue] | None:
        if any(leaf.fact == "__never__" for leaf in leaves):
            return None
        facts: dict[str, c.FactValue] = {}
        for fact, dom in self.space._domains(leaves).items():
            if dom.present is False:
                continue
            options = dom.candidates()
            if not options:
                return None
            facts[fact] = self.rng.choice(options)
        return facts


def _retarget(leaf: c.Leaf, fact: str) -> c.Leaf:
    if isinstance(leaf, c.Compare):
        return c.Compare(leaf.op, fact, leaf.value, leaf.text)
    if isinstance(leaf, c.InSet):
        return c.InSet(fact, leaf.values, leaf.negated)
    if isinstance(leaf, c.Censored):
        return c.Censored(fact, leaf.sides, leaf.negated)
    return c.Presence(fact, leaf.present)


# --- dose directions ----------------------------------------------------------------------------------


def directions(effect: DoseEffect | None) -> set[str]:
    if effect is None:
        return set()
    found = set()
    if effect.withhold:
        found.add("withhold")
    if effect.factor is not None and effect.factor != 1:
        found.add("up" if effect.factor > 1 else "down")
    if effect.step is not None:
        found.add("up" if effect.step > 0 else "down")
    if effect.max_daily_mg is not None:
        found.add("cap")
    if effect.set_daily_mg is not None:
        found.add("set")
    return found


def opposition(a: Rule, b: Rule) -> str | None:
    """Why the composer would have to choose between a and b without a stated order (None: no conflict)."""
    da, db = directions(a.dose), directions(b.dose)
    if {"up", "down"} <= (da | db) and (("up" in da and "down" in db) or ("down" in da and "up" in db)):
        return "an increase against a decrease"
    if ("set" in da and db & {"up", "down"}) or ("set" in db and da & {"up", "down"}):
        return "a set dose against a step or factor (the set dose replaces the step; factors scale it)"
    if "set" in da and "set" in db and a.dose and b.dose and a.dose.set_daily_mg != b.dose.set_daily_mg:
        return "two different set doses (the lowest is taken)"
    return None


def stated(a: Rule, b: Rule) -> str | None:
    """Pairs the composer orders by design: withhold wins; a cap bounds every increase."""
    da, db = directions(a.dose), directions(b.dose)
    if not da or not db:
        return None
    if "withhold" in da | db and (da | db) - {"withhold"}:
        return "withhold wins"
    if ("cap" in da and db & {"up", "set"}) or ("cap" in db and da & {"up", "set"}):
        return "caps apply after increases"
    return None


# --- the audit ---------------------------------------------------------------------------------------


def audit_rules(rule_set: RuleSet, *, seed: int = 8, check_pairs: bool = True) -> AuditReport:
    searcher = _Searcher(rule_set, seed)
    rules = rule_set.rules
    findings = [*_unreachable(searcher, rules), *_duplicates(searcher, rules)]
    resolved: list[tuple[str, str, str]] = []
    pairs = 0
    if check_pairs:
        for a, b in itertools.combinations(rules, 2):
            hooks = [h for h in a.hooks if h in b.hooks]
            why, how = opposition(a, b), stated(a, b)
            if not hooks or (why is None and how is None):
                continue
            pairs += 1
            example = searcher.witness([a, b], hooks[0], ATTEMPTS_PER_PAIR)
            if example is None:
                continue
            if why is None and how is not None:
                resolved.append((a.id, b.id, how))
                continue
            findings.append(_conflict(a, b, why or "", example))
    findings += _unused_codes(rule_set)
    value_sets, notes = _unused_value_sets(rule_set)
    findings += value_sets
    return AuditReport(tuple(findings), len(rules), pairs, tuple(resolved), tuple(notes))


def _unreachable(searcher: _Searcher, rules: Sequence[Rule]) -> Iterable[Finding]:
    for rule in rules:
        conjuncts = searcher.space.dnfs[rule.id]
        note = _note(rule)
        if conjuncts is not None and not any(searcher.space.consistent(conj) for conj in conjuncts):
            message = "can never fire: its conditions contradict each other or the facts' plausible ranges"
            yield Finding("unreachable", rule.id, message, rule.file, rule.line, (rule.id,), explanation=note)
            continue
        if searcher.witness([rule], rule.hooks[0], ATTEMPTS_PER_RULE) is None:
            message = f"no firing example found in {ATTEMPTS_PER_RULE} guided attempts (probably unreachable)"
            yield Finding("unreachable", rule.id, message, rule.file, rule.line, (rule.id,), explanation=note)


def _duplicates(searcher: _Searcher, rules: Sequence[Rule]) -> Iterable[Finding]:
    for a, b in itertools.combinations(rules, 2):
        hooks = [h for h in a.hooks if h in b.hooks]
        same = a.ruleset_id == b.ruleset_id and set(c.facts_of(a.when)) == set(c.facts_of(b.when))
        if not hooks or not same or _action_kind(a) != _action_kind(b):
            continue
        example = searcher.witness([a, b], hooks[0], ATTEMPTS_PER_PAIR)
        if example is None:
            continue  # a ladder (mild, moderate, severe) reads the same facts but never fires twice
        explanation = _note(a) if b.id in _note(a) else _note(b) if a.id in _note(b) else ""
        message = (
            f"{b.id} reads the same facts as {a.id} ({', '.join(sorted(c.facts_of(a.when)))}), acts the same way "
            f"({_action_kind(a)}) and both can fire together: merge them, or name the other id in an audit_note"
        )
        yield Finding(
            "probable-duplicate", f"{a.id} + {b.id}", message, b.file, b.line, (a.id, b.id), example, explanation
        )


def _action_kind(rule: Rule) -> str:
    if rule.card is not None:
        return f"{rule.card.indicator} {rule.card.topic} card"
    dose = sorted(directions(rule.dose))
    derives = sorted(d.fact for d in rule.derive)
    return "; ".join(
        [*([f"dose {'/'.join(dose)}"] if dose else []), *([f"derives {', '.join(derives)}"] if derives else [])]
    )


def _conflict(a: Rule, b: Rule, why: str, example: Mapping[str, c.FactValue]) -> Finding:
    explanation = _note(a) if b.id in _note(a) else _note(b) if a.id in _note(b) else ""
    message = f"{a.id} and {b.id} can fire together: {why}; no audit_note states the precedence"
    if explanation:
        message = f"{a.id} and {b.id} can fire together: {why}"
    return Finding("conflict", f"{a.id} + {b.id}", message, a.file, a.line, (a.id, b.id), example, explanation)


def _note(rule: Rule) -> str:
    return str(rule.source.get("audit_note", "") or "")


def _all_notes(rule_set: RuleSet) -> list[str]:
    return [_note(r) for r in rule_set.rules if _note(r)]


def _unused_codes(rule_set: RuleSet) -> Iterable[Finding]:
    used: dict[str, set[str]] = {}
    for rule in rule_set.rules:
        for leaf in c.leaves(rule.when):
            mentioned = used.setdefault(leaf.fact, set())
            if isinstance(leaf, c.InSet):
                mentioned |= set(leaf.values)
            elif isinstance(leaf, c.Compare):
                mentioned.add(str(leaf.value))
        for d in rule.derive:
            if d.value is not None:
                used.setdefault(d.fact, set()).add(str(d.value))
    notes = _all_notes(rule_set)
    for fact, mentioned in sorted(used.items()):
        spec = rule_set.vocabulary[fact]
        if spec.type != "code" or not spec.values:
            continue
        for value in spec.values:
            if value in mentioned:
                continue
            subject = f"{fact}={value}"
            explanation = next((n for n in notes if subject in n), "")
            message = f"code {value!r} of {fact} is read by no rule and derived by none"
            yield Finding("unused-code", subject, message, explanation=explanation)


def _unused_value_sets(rule_set: RuleSet) -> tuple[list[Finding], list[str]]:
    folder = Path(rule_set.root) / "terminology"
    if not folder.is_dir():
        return [], []
    read = {leaf.fact for rule in rule_set.rules for leaf in c.leaves(rule.when)}
    notes = _all_notes(rule_set)
    findings, info = [], []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        sets = data.get("value_sets") if isinstance(data, dict) else None
        for name, body in (sets or {}).items():
            described = f"{header} {body.get('description', '') if isinstance(body, dict) else ''}"
            facts = _linked_facts(str(name), described, rule_set.vocabulary)
            if not facts:
                info.append(f"value set {name} ({path.name}) feeds no declared fact directly (mapper-internal)")
            elif not any(f in read for f in facts):
                explanation = next((n for n in notes if name in n), "")
                message = f"value set {name} feeds {', '.join(facts)}, which no rule reads"
                findings.append(Finding("unused-value-set", name, message, str(path), 1, explanation=explanation))
    return findings, info


def _linked_facts(name: str, described: str, vocabulary: Vocabulary) -> list[str]:
    """Facts a value set feeds: named in facts.yaml ("value set NAME"), in the set's text, or by its name."""
    guess = name.replace("-", ".", 1).replace("-", "_")
    return [
        fact
        for fact, spec in vocabulary.facts.items()
        if f"value set {name}" in spec.description
        or fact in described.split()
        or f"{fact})" in described
        or fact == guess
        or fact.split(".")[-1] == name.replace("-", "_")
    ]


# --- report ------------------------------------------------------------------------------------------


def render_audit(report: AuditReport) -> str:
    unexplained, explained = report.unexplained, [f for f in report.findings if f.explained]
    lines = [
        "# Static audit of the rule set",
        "",
        f"{report.rules_checked} active rules; {report.pairs_checked} pairs with opposing or ordered dose effects "
        f"searched; {len(report.findings)} finding(s), {len(unexplained)} unexplained.",
        "",
        "## Unexplained findings",
        "",
    ]
    lines += [_line(f) for f in unexplained] or ["None."]
    lines += ["", "## Explained findings (audit_note)", ""]
    lines += [f"{_line(f)}\n  - explained: {' '.join(f.explanation.split())}" for f in explained] or ["None."]
    lines += ["", "## Co-firing pairs resolved by the composer's stated order", ""]
    lines += [f"- {a} + {b}: {how}" for a, b, how in report.resolved_by_composer] or ["None."]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _line(finding: Finding) -> str:
    where = f" ({finding.file}:{finding.line})" if finding.file else ""
    text = f"- **{finding.kind}** {finding.subject}{where}: {finding.message}"
    if finding.example:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(finding.example.items()))
        text += f"\n  - example facts: {shown}"
    return text
