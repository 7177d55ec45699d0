"""The one flow both the service and the CLI run: request -> facts -> PK -> rules -> composer -> cards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cds import __version__
from cds.cards import CardContext, build_cards
from cds.cards.build import RecordedFact
from cds.cards.settings import display_zone
from cds.cards.topics import placement
from cds.engine.decision import CardSpec, Decision
from cds.engine.evaluate import RuleEngine
from cds.engine.ruleset import RuleSet, load_rules
from cds.engine.testing import RequestUnavailable
from cds.errors import EngineError, InvalidInput, RuleError
from cds.fhir import HookRequest, PatientRecord, extract_record, fact_values, parse_request
from cds.fhir.record_json import record_from_json, record_to_json
from cds.fhir.settings import load_settings
from cds.fhir.terminology import load_terminology
from cds.paediatric import paediatric_facts
from cds.pk_step import PkStep, estimate_for_record
from cds.relevance import Relevance, judge, level_recency_days
from cds.shipped import checkout_root, shipped_rules

DEFAULT_RULES = shipped_rules()  # the checkout's rules/, or the wheel's cds/rulepack
# fhir_examples/ are written for this evaluation time; tests and request-based rule tests pin it
EXAMPLES_EVALUATION_TIME = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    request: HookRequest
    record: PatientRecord
    pk: PkStep
    decision: Decision
    cards: list[dict[str, Any]]
    service_warnings: tuple[str, ...] = ()  # e.g. prefetch keys that could not be had
    relevance: Relevance | None = None  # which of the decision's cards this hook shows, and why
    mapping_digest: str = ""  # the mapping configuration that read the record (Pipeline.mapping_digest)

    @property
    def response(self) -> dict[str, Any]:
        return {"cards": self.cards}

    def trace(self) -> dict[str, Any]:
        """What `evaluate --trace` prints and the audit log keeps: why these cards."""
        d = self.decision
        cards = {spec.rule_id: spec for spec in d.cards}
        shown = self.relevance.cards if self.relevance is not None else d.cards
        shown_on = placement(shown, d.dose) if self.cards else {}
        trace: dict[str, Any] = {
            "hookInstance": self.request.hook_instance,
            "ruleset": {"digest": d.ruleset_digest, "version": d.ruleset_version},
            "facts": dict(d.facts),
            "sources": {name: [str(s) for s in f.sources] for name, f in self.record.facts.items()},
            # how the mapper read a fact (e.g. "matched by text of Condition.code"), where it says
            "notes": {name: f.note for name, f in self.record.facts.items() if f.note},
            "fired": [
                {
                    "rule": f.rule_id,
                    "title": f.title,
                    "version": f.ruleset_version,
                    "ruleset": f.ruleset_id,
                    "facts_used": dict(f.facts_used),
                    **_card_rule(cards.get(f.rule_id), shown_on.get(f.rule_id)),
                }
                for f in d.fired
            ],
            "dose": {
                "action": d.dose.action,
                "daily_mg": d.dose.daily_mg,
                "interval_h": d.dose.interval_h,
                "steps": [s.text for s in d.dose.steps],
            },
            "dose_history": {
                "source": self.record.dose_source,
                "note": self.record.dose_note,
                **({"drafts": list(self.record.draft_parts)} if self.record.draft_parts else {}),
            },
            "scope": {
                "facts": {k: v for k, v in d.facts.items() if k.startswith("scope.")},
                "decided_by": [f.rule_id for f in d.fired if any(k.startswith("scope.") for k in f.derived)],
                "suppressed": [
                    {"rule": s.rule_id, "because": s.because, "by": list(s.scope_rules)} for s in d.suppressed
                ],
            },
            "warnings": [*self.service_warnings, *self.record.warnings, *self.pk.warnings, *d.warnings],
        }
        if self.relevance is not None:
            trace["relevance"] = self.relevance.trace()
        if self.pk.summary is not None:
            trace["pk"] = self.pk.summary
        return trace

    def inputs(self, request_text: str) -> dict[str, Any]:
        """What the audit log keeps so that `audit replay` can recompute this decision: the request as the
        mapper read it (``request_text``: JSON, credentials already removed), the record it made, and "now"."""
        return {
            "now": self.record.now.isoformat(),
            "request": request_text,
            "record": record_to_json(self.record),
            "pk": self.pk.recorded,
            "mapping": self.mapping_digest,
            "version": __version__,
        }


def client_scoped(hook_instance: str, client: str) -> str:
    """What card ids derive from: the hookInstance alone for an unauthenticated (loopback) service, else a digest
    of (issuer, hookInstance), so a client reusing another's hookInstance gets other card ids."""
    if not client:
        return hook_instance
    return "client-" + hashlib.sha256(json.dumps([client, hook_instance]).encode()).hexdigest()


def _card_rule(spec: CardSpec | None, shown_on: str | None) -> dict[str, Any]:
    """For a rule that made a card: its topic, the card (topic) its finding was shown on, if any, and the evidence
    it cited, so the explanation page shows them as they were, whatever the rule says later."""
    if spec is None:
        return {}
    evidence = [{k: v for k, v in vars(e).items() if v} for e in spec.evidence]
    return {"topic": spec.topic, **({"card": shown_on} if shown_on else {}), "evidence": evidence}


def mapping_digest(rules_dir: Path) -> str:
    """sha256 over what the mapper reads besides the request (fact vocabulary, mapping settings, terminology),
    parsed, so that formatting-only edits keep it: equal digests map a request to the same record."""
    files = [rules_dir / "facts.yaml", rules_dir / "mapping.yaml", *sorted((rules_dir / "terminology").glob("*.yaml"))]
    parts = {str(f.relative_to(rules_dir)): yaml.safe_load(f.read_text(encoding="utf-8")) for f in files if f.is_file()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    """Loaded once (rules compiled, model and terminology read); ``run`` is called per request."""

    def __init__(
        self,
        rules_dir: Path = DEFAULT_RULES,
        *,
        backend: str = "durable",
        explain_url: Callable[[str, str], str] | None = None,  # (hookInstance, client) -> signed link
        clock: Callable[[], datetime] = utc_now,
        rule_set: RuleSet | None = None,  # already loaded from rules_dir (`rules test` on rules that partly load)
    ) -> None:
        self.rules_dir = rules_dir
        self.clock = clock  # what "now" is when a call does not say: lab ages, dose times
        self.rule_set: RuleSet = rule_set or load_rules(rules_dir)
        self.engine = RuleEngine(self.rule_set, backend=backend)
        self.settings = load_settings(rules_dir / "mapping.yaml")
        self.terminology = load_terminology(rules_dir / "terminology")
        self.explain_url = explain_url
        self.display_zone = display_zone(rules_dir / "mapping.yaml")
        self.mapping_digest = mapping_digest(rules_dir)
        self._rule_derived = frozenset(d.fact for rule in self.rule_set.rules for d in rule.derive)
        level_recency_days(self.rule_set.policy)  # the relevance stage's parameter: fail at start, not per call
        missing = [n for n in self.settings.relevance_interacting_value_sets if n not in self.terminology.value_sets]
        if missing:
            raise RuleError(f"rules/mapping.yaml relevance: no value set {', '.join(missing)} in rules/terminology")

    def run(
        self,
        raw: bytes | str | Mapping[str, Any],
        *,
        now: datetime | None = None,
        extra_warnings: Sequence[str] = (),
        client: str = "",
    ) -> Outcome:
        """``client`` is the issuer of the calling client ("" when calls are not authenticated): card ids and
        the explanation link belong to (client, hookInstance), so two clients never share them."""
        request = parse_request(raw if not isinstance(raw, Mapping) else dict(raw))
        record, pk, facts = self.facts_for(request, now or self.clock())
        return self._decide(request, record, pk, facts, client, tuple(extra_warnings))

    def rerun(self, inputs: Mapping[str, Any], *, client: str = "") -> Outcome:
        """A recorded decision (``Outcome.inputs``) evaluated again with this pipeline's rules, at its own "now".
        The recorded patient record is used as it is when this pipeline maps requests as the one that made it
        did; otherwise the recorded request is mapped again (e.g. a candidate that adds a terminology code)."""
        try:
            raw, now = inputs["request"], datetime.fromisoformat(inputs["now"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("inputs", f"not the recorded inputs of a decision: {exc!r}") from exc
        request = parse_request(raw)
        if inputs.get("mapping") == self.mapping_digest and "record" in inputs:
            record = record_from_json(inputs["record"])
            pk, facts = self.enrich(record, inputs.get("pk"), same_record=True)
        else:
            record, pk, facts = self.facts_for(request, now)
        return self._decide(request, record, pk, facts, client, ())

    def _decide(
        self,
        request: HookRequest,
        record: PatientRecord,
        pk: PkStep,
        facts: dict[str, Any],
        client: str,
        extra_warnings: tuple[str, ...],
    ) -> Outcome:
        decision = self.engine.evaluate(facts, request.hook)
        relevance = judge(request.hook, record.drafts, decision.facts, decision.cards, self.rule_set.policy)
        shown = replace(decision, cards=relevance.cards)
        context = CardContext(
            hook_instance=client_scoped(request.hook_instance, client),
            patient_id=request.patient_id,
            draft_orders=record.draft_orders,
            recorded=RecordedFacts(record),
            explain_url=(self.explain_url(request.hook_instance, client) if self.explain_url and shown.cards else None),
            vocabulary=self.rule_set.vocabulary,
            display_zone=self.display_zone,
        )
        cards = build_cards(shown, context)
        return Outcome(request, record, pk, decision, cards, extra_warnings, relevance, self.mapping_digest)

    def facts_for(self, request: HookRequest, now: datetime) -> tuple[PatientRecord, PkStep, dict[str, Any]]:
        """The patient's record, the PK step and the facts the rules will see."""
        record = extract_record(
            request, now=now, vocabulary=self.rule_set.vocabulary, settings=self.settings, terminology=self.terminology
        )
        return (record, *self.enrich(record))

    def enrich(
        self, record: PatientRecord, recorded_pk: Mapping[str, Any] | None = None, *, same_record: bool = False
    ) -> tuple[PkStep, dict[str, Any]]:
        """The PK step on the record (reusing ``recorded_pk`` when its inputs are the same), and the facts the
        rules will see."""
        pk = estimate_for_record(record, self.rule_set.policy, recorded_pk, same_record=same_record)
        facts: dict[str, Any] = {**fact_values(record), **pk.facts}
        facts.update(paediatric_facts(facts, self.rule_set.policy))
        self._check_inputs(facts)
        return pk, facts

    def _check_inputs(self, facts: Mapping[str, Any]) -> None:
        """Facts the rules derive must come from the rules, never from the mapper or the estimator."""
        leaked = sorted(set(facts) & self._rule_derived)
        if leaked:
            raise EngineError(f"facts that only rules may derive were given as input: {', '.join(leaked)}")


class RecordedFacts(Mapping[str, RecordedFact]):
    """fact -> value, unit and newest source time, made only for the facts a card shows (most calls show few)."""

    def __init__(self, record: PatientRecord) -> None:
        self._facts = record.facts

    def __getitem__(self, name: str) -> RecordedFact:
        fact = self._facts[name]
        times = [s.effective for s in fact.sources if s.effective is not None]
        # a computed value is as recent as the result it was computed from (the first source), not its weight
        when = (times[0] if fact.computed else max(times)) if times else None
        return RecordedFact(fact.value, fact.unit, when, fact.reported, fact.computed)

    def __iter__(self) -> Iterator[str]:
        return iter(self._facts)

    def __len__(self) -> int:
        return len(self._facts)


class ExampleRequests:
    """For rule tests with `request:`: the facts (with PK) a fhir_examples request produces, and its hook, mapped
    with the mapping and terminology of the rules under test.

    A test names its request from the repository root (``fhir_examples/x.json``); it is looked up under each of
    ``roots`` (default: the folder that holds the rules folder, then the git checkout the package runs from).
    fhir_examples/ are not in the wheel: a request whose folder is under none of them is skipped
    (RequestUnavailable); a missing file in a folder that is there is an error (a mistyped name).
    """

    def __init__(self, rules_dir: Path, roots: Sequence[Path] = (), rule_set: RuleSet | None = None) -> None:
        self.rules_dir = rules_dir
        self.rule_set = rule_set
        checkout = checkout_root()
        defaults = [rules_dir.resolve().parent, *([checkout] if checkout else [])]
        self.roots = tuple(dict.fromkeys(roots or defaults))
        self._pipeline: Pipeline | None = None

    def __call__(self, path: str) -> tuple[dict[str, Any], str]:
        raw = self._read(path)
        if self._pipeline is None:
            self._pipeline = Pipeline(self.rules_dir, rule_set=self.rule_set)
        request = parse_request(raw)
        _, _, facts = self._pipeline.facts_for(request, EXAMPLES_EVALUATION_TIME)
        return facts, request.hook

    def _read(self, path: str) -> bytes:
        given = Path(path)
        candidates = [given] if given.is_absolute() else [root / given for root in self.roots]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None and not given.is_absolute() and not any((r / given.parts[0]).is_dir() for r in self.roots):
            where = ", ".join(str(r) for r in self.roots)
            raise RequestUnavailable(
                f"request {path} not found under {where} (fhir_examples/ ship with the repository, not the "
                "package; give the checkout with --requests-root)"
            )
        try:
            return (file or candidates[0]).read_bytes()
        except OSError as exc:
            raise InvalidInput(path, f"cannot read the request: {exc.strerror}") from exc


_SHIPPED_REQUESTS: list[ExampleRequests] = []


def request_facts(path: str) -> tuple[dict[str, Any], str]:
    """ExampleRequests for the shipped rules (one pipeline for the whole run)."""
    if not _SHIPPED_REQUESTS:
        _SHIPPED_REQUESTS.append(ExampleRequests(DEFAULT_RULES))
    return _SHIPPED_REQUESTS[0](path)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
