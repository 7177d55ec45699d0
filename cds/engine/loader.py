"""Reads one rule file into the model, reporting every problem it finds as a Diagnostic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from cds.engine import conditions as c
from cds.engine.diagnostics import Diagnostic
from cds.engine.lint import card_text_problems
from cds.engine.model import (
    CardTemplate,
    Derivation,
    DoseEffect,
    Evidence,
    Expectation,
    Rule,
    RuleFile,
    RulesetMeta,
    RuleTest,
    Suggestion,
)
from cds.engine.policy import POLICY_PREFIX, Policy
from cds.engine.render import placeholders, render, widest_values
from cds.engine.schema import HOOKS, rule_file_schema
from cds.engine.schema_errors import explain as explain_schema_error
from cds.engine.spelling import did_you_mean
from cds.engine.vocabulary import FactSpec, Vocabulary
from cds.engine.yamlpos import Located, Path_, YamlSyntaxError, load_located
from cds.units import UnitError, convert, parse_quantity

SUMMARY_LIMIT = 139
_LEAF_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "present", "missing", "censored")
_VALIDATOR = Draft202012Validator(rule_file_schema())


@dataclass
class _Context:
    file: str
    located: Located
    vocabulary: Vocabulary
    policy: Policy
    diagnostics: list[Diagnostic] = field(default_factory=list)
    threshold_at: dict[c.Node, tuple[int, int]] = field(default_factory=dict)  # of the rule being read

    def error(self, path: Path_, code: str, message: str) -> None:
        line, col = self.located.where(path)
        self.diagnostics.append(Diagnostic(self.file, line, col, code, message))


def load_rule_file(
    file: str, text: str, vocabulary: Vocabulary, policy: Policy
) -> tuple[RuleFile | None, list[Diagnostic]]:
    try:
        located = load_located(text)
    except YamlSyntaxError as exc:
        return None, [Diagnostic(file, exc.line, exc.col, "E001", str(exc))]
    ctx = _Context(file, located, vocabulary, policy)
    broken = _check_structure(ctx)
    if () in broken or ("ruleset",) in broken or not isinstance(located.data, dict):
        return None, ctx.diagnostics
    meta = _meta(located.data["ruleset"])
    rules = []
    for row, raw in enumerate(located.data["rules"]):
        if ("rules", row) not in broken:
            rule = _rule(ctx, meta, row, raw)
            if rule is not None:
                rules.append(rule)
    ids = tuple(
        (raw["id"], located.where(("rules", row))[0])
        for row, raw in enumerate(located.data.get("rules") or [])
        if isinstance(raw, dict) and isinstance(raw.get("id"), str)
    )
    return RuleFile(file, meta, tuple(rules), ids), ctx.diagnostics


def _check_structure(ctx: _Context) -> set[Path_]:
    """Schema errors (E002); returns the paths of the top-level parts that are unusable."""
    broken: set[Path_] = set()
    for error in sorted(_VALIDATOR.iter_errors(ctx.located.data), key=lambda e: list(map(str, e.path))):
        path = tuple(error.absolute_path)
        for (line, col), message in explain_schema_error(error, ctx.located, _LEAF_OPS):
            ctx.diagnostics.append(Diagnostic(ctx.file, line, col, "E002", message))
        broken.add(path[:2] if path[:1] == ("rules",) else path[:1])
    return broken


def _meta(raw: dict[str, Any]) -> RulesetMeta:
    approved = raw["approved"]
    return RulesetMeta(
        id=raw["id"],
        version=raw["version"],
        status=raw["status"],
        title=raw["title"],
        purpose=raw["purpose"],
        hit_policy=raw["hit_policy"],
        jurisdiction=raw["jurisdiction"],
        owner=raw["owner"],
        approved_by=approved["by"],
        approved_date=approved["date"],
        effective_from=raw["effective_from"],
        review_by=raw["review_by"],
        retired_ids=tuple(raw.get("retired_ids", ())),
        raw=raw,
    )


def _rule(ctx: _Context, meta: RulesetMeta, row: int, raw: dict[str, Any]) -> Rule | None:
    base: Path_ = ("rules", row)
    before = len(ctx.diagnostics)
    ctx.threshold_at = {}
    for i, hook in enumerate(raw["hooks"]):
        if hook not in HOOKS:
            ctx.error((*base, "hooks", i), "E011", f"unknown hook {hook!r} (expected one of {', '.join(HOOKS)})")
    if not raw["evidence"]:
        ctx.error((*base, "evidence"), "E008", f"rule {raw['id']} cites no evidence")
    if not raw["tests"]:
        ctx.error((*base, "tests"), "E009", f"rule {raw['id']} has no test")
    when = _condition(ctx, (*base, "when"), raw["when"])
    then = raw["then"]
    card = _card(ctx, (*base, "then", "card"), then["card"]) if "card" in then else None
    derive = tuple(_derivations(ctx, (*base, "then", "derive"), then.get("derive", {})))
    _dose_bases(ctx, (*base, "then", "dose"), then.get("dose", {}))
    tests = tuple(_tests(ctx, base, raw))
    if when is None or len(ctx.diagnostics) > before:
        return None
    line, _ = ctx.located.where(base)
    return Rule(
        id=raw["id"],
        title=raw["title"],
        hooks=tuple(raw["hooks"]),
        evidence=tuple(Evidence(**e) for e in raw["evidence"]),
        when=when,
        card=card,
        dose=DoseEffect(**then["dose"]) if "dose" in then else None,
        derive=derive,
        tests=tests,
        ruleset_id=meta.id,
        ruleset_version=meta.version,
        row=row,
        file=ctx.file,
        line=line,
        source=raw,
        rationale=raw.get("rationale", ""),
        review_note=raw.get("review_note", ""),
        threshold_at=ctx.threshold_at,
    )


# --- conditions ---------------------------------------------------------------------------------


def _condition(ctx: _Context, path: Path_, raw: dict[str, Any]) -> c.Node | None:
    ((op, arg),) = raw.items()
    if op in ("all", "any"):
        items = [_condition(ctx, (*path, op, i), item) for i, item in enumerate(arg)]
        if any(item is None for item in items):
            return None
        kept = tuple(item for item in items if item is not None)
        return c.All(kept) if op == "all" else c.AnyOf(kept)
    if op == "not":
        inner = _condition(ctx, (*path, "not"), arg)
        return None if inner is None else c.Not(inner)
    if op in ("present", "missing"):
        return c.Presence(arg, op == "present") if _spec(ctx, (*path, op), arg) else None
    if op == "censored":
        return _censored(ctx, (*path, op), arg)
    spec = _spec(ctx, (*path, op, 0), arg[0])
    if spec is None:
        return None
    if op == "in":
        return _in_set(ctx, (*path, op), spec, arg[1])
    if op == "between":
        low = _threshold(ctx, (*path, op, 1), spec, arg[1], "gte")
        high = _threshold(ctx, (*path, op, 2), spec, arg[2], "lt")
        if low is None or high is None:
            return None
        if float(low.value) >= float(high.value):
            ctx.error((*path, op), "E005", f"between on {spec.name}: low {low.text} is not below high {high.text}")
            return None
        return c.All((low, high))
    return _threshold(ctx, (*path, op, 1), spec, arg[1], op)


def _censored(ctx: _Context, path: Path_, arg: str | list[str]) -> c.Censored | None:
    name, sides = (arg, c.ANY_SIDE) if isinstance(arg, str) else (arg[0], c.SIDE_GROUPS[arg[1]])
    spec = _spec(ctx, path if isinstance(arg, str) else (*path, 0), name)
    if spec is None:
        return None
    if not spec.censorable:
        ctx.error(
            path, "E012", f"'censored' needs a censorable fact; {name} is not listed under censorable in facts.yaml"
        )
        return None
    return c.Censored(name, sides)


def _spec(ctx: _Context, path: Path_, name: str) -> FactSpec | None:
    if name not in ctx.vocabulary:
        ctx.error(path, "E003", f"unknown fact `{name}` (not in facts.yaml){did_you_mean(name, ctx.vocabulary.facts)}")
        return None
    return ctx.vocabulary[name]


def _in_set(ctx: _Context, path: Path_, spec: FactSpec, values: list[str]) -> c.InSet | None:
    if spec.type != "code":
        ctx.error(path, "E012", f"'in' needs a code fact; {spec.name} is {spec.type}")
        return None
    unknown = [v for v in values if spec.values is not None and v not in spec.values]
    if unknown:
        ctx.error((*path, 1), "E005", f"{spec.name} never takes the value(s) {', '.join(map(str, unknown))}")
        return None
    return c.InSet(spec.name, frozenset(values))


def _threshold(ctx: _Context, path: Path_, spec: FactSpec, raw: Any, op: str) -> c.Compare | None:
    value = fact_value(ctx, path, spec, raw, allow_policy=True)
    if value is None:
        return None
    if op in c.ORDERING and spec.type != "number":
        hint = " (compare a duration in days instead)" if spec.type == "date" else ""
        ctx.error(path, "E012", f"'{op}' compares numbers; {spec.name} is {spec.type}{hint}")
        return None
    if spec.type == "number" and not (
        spec.low is not None and spec.high is not None and spec.low <= float(value) <= spec.high
    ):
        ctx.error(
            path,
            "E005",
            f"threshold {raw} for {spec.name} is outside its plausible range {spec.expected()}",
        )
        return None
    compare = c.Compare(op, spec.name, value, str(raw), spec.censorable)
    ctx.threshold_at.setdefault(compare, ctx.located.where(path))
    return compare


def fact_value(ctx: _Context, path: Path_, spec: FactSpec, raw: Any, *, allow_policy: bool) -> c.FactValue | None:
    """A literal (or policy reference) converted to the fact's canonical form; reports problems."""
    if allow_policy and isinstance(raw, str) and raw.startswith(POLICY_PREFIX):
        name = raw[len(POLICY_PREFIX) :]
        if name not in ctx.policy.parameters:
            ctx.error(path, "E013", f"unknown policy parameter {name!r}{did_you_mean(name, ctx.policy.parameters)}")
            return None
        raw = ctx.policy.parameters[name].value
        if not isinstance(raw, str | bool | int | float):
            raw = f"{raw.value} {raw.unit}"
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        ctx.error(path, "E012", f"{spec.name} is boolean; got {raw!r}")
        return None
    if spec.type in ("code", "date"):
        if isinstance(raw, str) and not isinstance(raw, bool) and (spec.values is None or raw in spec.values):
            return raw
        ctx.error(path, "E012", f"{spec.name} takes {', '.join(spec.values or ('text',))}; got {raw!r}")
        return None
    return _number(ctx, path, spec, raw)


def _number(ctx: _Context, path: Path_, spec: FactSpec, raw: Any) -> float | None:
    if isinstance(raw, bool):
        ctx.error(path, "E012", f"{spec.name} is a number; got {raw!r}")
        return None
    if isinstance(raw, int | float):
        if spec.unit != "1":
            ctx.error(path, "E004", f"{raw} for {spec.name} needs a unit (canonical: {spec.unit})")
            return None
        return float(raw)
    try:
        quantity = parse_quantity(str(raw))
        return convert(quantity.value, quantity.unit, spec.unit or "1", molar_mass_g_mol=spec.molar_mass_g_mol)
    except UnitError as exc:
        ctx.error(path, "E004", f"{raw!r} for {spec.name} (canonical unit {spec.unit}): {exc}")
        return None


# --- then ---------------------------------------------------------------------------------------


def _card(ctx: _Context, path: Path_, raw: dict[str, Any]) -> CardTemplate:
    for key in ("summary", "detail"):
        for name in placeholders(raw.get(key, "")):
            known = (
                name[len(POLICY_PREFIX) :] in ctx.policy.parameters
                if name.startswith(POLICY_PREFIX)
                else name in ctx.vocabulary
            )
            if not known:
                names = [*ctx.vocabulary.facts, *(POLICY_PREFIX + p for p in ctx.policy.parameters)]
                ctx.error((*path, key), "E016", f"unknown placeholder {{{name}}}{did_you_mean(name, names)}")
    widest = render(raw["summary"], widest_values(ctx.vocabulary), ctx.policy)
    if len(widest) > SUMMARY_LIMIT:
        ctx.error(
            (*path, "summary"),
            "E006",
            f"summary is {len(widest)} characters with the largest plausible values (max {SUMMARY_LIMIT}): {widest!r}",
        )
    for where, code, message in card_text_problems(raw):
        ctx.error((*path, *where), code, message)
    suggestions = tuple(Suggestion(s["label"], s["action"]) for s in raw.get("suggestions", ()))
    return CardTemplate(raw["indicator"], raw["summary"], raw["topic"], raw.get("detail", ""), suggestions)


def _dose_bases(ctx: _Context, path: Path_, dose: dict[str, Any]) -> None:
    """A dose base or fact cap must be a daily dose in mg; `of` needs a factor or a step to apply to it."""
    for key in ("of", "max_of"):
        name = dose.get(key)
        spec = _spec(ctx, (*path, key), name) if name is not None else None
        if spec is not None and (spec.type != "number" or spec.unit != "mg"):
            ctx.error((*path, key), "E012", f"dose {key} needs a daily dose in mg; {name} is {spec.type} {spec.unit}")
    if "of" in dose and "factor" not in dose and "step" not in dose:
        ctx.error((*path, "of"), "E002", "dose 'of' names the base of a factor or a step; the rule has neither")
    if ("factor" in dose or "step" in dose) and "of" not in dose:
        # a factor or step on the ordered dose compounds each time the accepted suggestion is signed again
        ctx.error(path, "E002", "a dose factor or step needs its base: of: <fact> (e.g. regimen.standard_start_mg)")


def _derivations(ctx: _Context, path: Path_, raw: dict[str, Any]) -> Iterable[Derivation]:
    for name, value in raw.items():
        spec = _spec(ctx, (*path, name), name)
        if spec is None:
            continue
        if not spec.derived:
            ctx.error(
                (*path, name),
                "E014",
                f"{name} is not declared 'derived: true' in facts.yaml; rules may not overwrite data",
            )
            continue
        if isinstance(value, dict):
            source = _spec(ctx, (*path, name, "from"), value["from"])
            if source is not None and source.type != spec.type:
                ctx.error((*path, name, "from"), "E012", f"{value['from']} is {source.type}, {name} is {spec.type}")
            elif source is not None:
                yield Derivation(name, from_fact=source.name)
            continue
        literal = fact_value(ctx, (*path, name), spec, value, allow_policy=True)
        if literal is not None:
            yield Derivation(name, value=literal)


# --- tests --------------------------------------------------------------------------------------


def _tests(ctx: _Context, base: Path_, raw: dict[str, Any]) -> Iterable[RuleTest]:
    for i, test in enumerate(raw["tests"]):
        path: Path_ = (*base, "tests", i)
        facts = None
        if "facts" in test:
            facts = {}
            for name, value in test["facts"].items():
                spec = ctx.vocabulary.facts.get(name)
                if spec is None:
                    ctx.error(
                        (*path, "facts", name),
                        "E018",
                        f"test {test['name']!r} sets unknown fact `{name}`{did_you_mean(name, ctx.vocabulary.facts)}",
                    )
                    continue
                converted = fact_value(ctx, (*path, "facts", name), spec, value, allow_policy=False)
                if converted is not None:
                    facts[name] = converted
        expect = test["expect"]
        derived = {}
        for name, value in expect.get("derived", {}).items():
            spec = _spec(ctx, (*path, "expect", "derived", name), name)
            if spec is not None:
                converted = fact_value(ctx, (*path, "expect", "derived", name), spec, value, allow_policy=True)
                if converted is not None:
                    derived[name] = converted
        yield RuleTest(
            name=test["name"],
            hook=test.get("hook", raw["hooks"][0]),
            facts=facts,
            request=test.get("request"),
            expect=Expectation(
                fired=tuple(expect.get("fired", ())),
                not_fired=tuple(expect.get("not_fired", ())),
                dose=expect.get("dose"),
                derived=derived,
                absent=tuple(expect.get("absent", ())),
            ),
            line=ctx.located.where(path)[0],
        )
