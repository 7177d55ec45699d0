"""Diagnosis, CML phase, adverse events, clinician-recorded flags and CYP3A4 comedications."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cds.fhir import parse
from cds.fhir.condition_readers import (
    Found,
    Grade,
    Labelled,
    cml_phase,
    diagnosis_ends,
    first_match,
    grade_of,
    serious_grade,
)
from cds.fhir.dosing import product
from cds.fhir.findings import ConditionFacts, read_adverse_event, read_condition, read_procedure
from cds.fhir.index import ResourceIndex, source
from cds.fhir.medication import MedicationFacts, read_request, read_statement
from cds.fhir.observation import read_observation
from cds.fhir.request_text import plain_label
from cds.fhir.settings import MappingSettings
from cds.fhir.sink import FactSink
from cds.fhir.terminology import Concept, Terminology, ValueSet
from cds.fhir.types import Source

_AE_OVER = {"resolved", "resolvedWithSequelae", "fatal"}
_PERPETRATORS = (
    ("cyp3a4-strong-inducers", "comed.strong_cyp3a4_inducer", "comed.inducer_name"),
    ("cyp3a4-moderate-inducers", "comed.moderate_cyp3a4_inducer", "comed.inducer_name"),
    ("cyp3a4-strong-inhibitors", "comed.strong_cyp3a4_inhibitor", "comed.inhibitor_name"),
    ("cyp3a4-moderate-inhibitors", "comed.moderate_cyp3a4_inhibitor", "comed.inhibitor_name"),
)
_FLAGS = (
    ("response-suboptimal", "response.suboptimal"),
    ("response-progression", "response.progression"),
    ("adherence-poor", "adherence.suspected_poor"),
    ("gi-absorption-risk", "gi.absorption_risk"),
    ("prior-cytopenia-episode", "heme.prior_cytopenia_episode"),
)
_FLAG_SETS = tuple(name for name, _ in _FLAGS)
# What observations are scanned for besides lab values: most name none of these, so they are matched once
# against the union of the sets before each set is tried on the few that remain.
_NOTED_SETS = (*_FLAG_SETS, "grapefruit", "cytopenia-leukaemia-related")
# Conditions that are adverse events the rules act on (label §2.13): without a grade they are reported.
_AE_KINDS = ("fluid-retention", "hepatotoxicity-events", "imatinib-adverse-reactions")
_RECORDED_IN = {"Condition": "problem list", "AdverseEvent": "adverse event entry"}  # where an entry is, in words


@dataclass(frozen=True)
class GradedEvent:
    source: Source
    grade: int
    event: Concept | None
    onset: datetime | None
    how: str = "CTCAE grade"


@dataclass(frozen=True)
class UngradedEvent:
    source: Source
    event: Concept | None
    missing: str


class ClinicalMapper:
    def __init__(
        self, index: ResourceIndex, sink: FactSink, terminology: Terminology, settings: MappingSettings, now: datetime
    ) -> None:
        self.index, self.sink, self.terms, self.settings, self.now = index, sink, terminology, settings, now
        maybe = terminology.union(_NOTED_SETS).match
        self.noted = [(key, found) for key, found in index.coded("Observation") if maybe(found)]

    def run(self) -> None:
        conditions = list(self._active_conditions())
        self.indication(conditions)
        self.adverse_events(conditions)
        self.flags(conditions)
        self.leukaemia_related()
        self.comedications()

    # --- diagnosis ----------------------------------------------------------------------------------

    def _active_conditions(self) -> Iterator[tuple[Source, ConditionFacts, Concept | None]]:
        indications = self.terms.union(("cml", "gist", "imatinib-other-indications"))
        for key in self.index.keys("Condition"):
            condition = self.index.read(key, read_condition)
            if condition is None:
                continue
            ended = diagnosis_ends(self.terms, condition.clinical_status, condition.verification_status)
            if ended is None:
                yield source(key, condition.when), condition, condition.code
            elif indications.match(condition.code):
                self.index.warnings.append(f"{key[0]}/{key[1]}: diagnosis not used, {ended}")

    def indication(self, conditions: list[tuple[Source, ConditionFacts, Concept | None]]) -> None:
        """CML before GIST before other labelled indications; several at once is reported, not resolved."""
        found = {
            label: [(src, c) for src, c, concept_ in conditions if self.terms[name].match(concept_)]
            for name, label in (("cml", "CML"), ("gist", "GIST"), ("imatinib-other-indications", "other"))
        }
        labels = [label for label, hits in found.items() if hits]
        if not labels:
            return
        if len(labels) > 1:
            self.index.warnings.append(
                f"dx.indication: active conditions for {' and '.join(labels)}; using {labels[0]}"
            )
        hits = found[labels[0]]
        self.sink.put("dx.indication", labels[0], [hits[0][0]], _indication_note(self.terms, labels[0], hits[0][1]))
        if labels[0] == "CML":
            self._phase(hits, conditions)

    def _phase(
        self,
        hits: list[tuple[Source, ConditionFacts]],
        conditions: list[tuple[Source, ConditionFacts, Concept | None]],
    ) -> None:
        """The phase from the CML Conditions, else from another Condition or an Observation that names one."""
        for src, found in self._phase_candidates(hits, conditions):
            if found.value == "conflicting":
                self.index.warnings.append(f"dx.cml_phase: {src.resource_type}/{src.id} names several phases")
                self.sink.put("dx.cml_phase", "unknown", [src], f"conflicting phases: {found.how}")
                return
            self.sink.put("dx.cml_phase", found.value, [src], f"matched by {found.how}")
            return
        self.sink.put(
            "dx.cml_phase",
            "unknown",
            [hits[0][0]],
            "no phase coded or written on the CML Condition, another Condition or an Observation",
        )

    def _phase_candidates(
        self,
        hits: list[tuple[Source, ConditionFacts]],
        conditions: list[tuple[Source, ConditionFacts, Concept | None]],
    ) -> Iterator[tuple[Source, Found]]:
        def read(concepts: list[Labelled]) -> Found | None:
            return cml_phase(self.terms, self.settings.cml_phase_codes, self.settings.cml_phase_words, concepts)

        for src, condition in hits:
            found = read(_stage_and_code(condition))
            if found is not None:
                yield src, found
        cml = {src for src, _ in hits}
        for src, condition, _ in conditions:
            found = None if src in cml else read(_stage_and_code(condition))
            if found is not None:
                yield src, found
        observed = []
        for key, value in self.index.coded("Observation", "valueCodeableConcept"):
            found = read([Labelled("Observation.value", value)])
            obs = self.index.read(key, read_observation) if found is not None else None
            if found is not None and obs is not None and obs.status in self.settings.observation_statuses:
                observed.append((source(key, obs.when), found))
        # the latest recorded phase first (a phase changes, it does not come back)
        yield from sorted(observed, key=lambda o: o[0].effective or datetime.min.replace(tzinfo=UTC), reverse=True)

    # --- adverse events -----------------------------------------------------------------------------

    def adverse_events(self, conditions: list[tuple[Source, ConditionFacts, Concept | None]]) -> None:
        heme = self.terms["heme-adverse-events"]
        liver = self.terms["hepatotoxicity-events"]
        ungraded: list[UngradedEvent] = []
        # hepatotoxicity is graded by the liver tests (hepatotoxicity.yaml, label §2.13): a problem-list entry
        # left active after the tests recovered must not withhold as an "other" severe reaction
        events = [e for e in self._graded(conditions, ungraded) if not heme.match(e.event) and not liver.match(e.event)]
        self._ungraded([u for u in ungraded if not heme.match(u.event)])
        if not events:
            return
        worst = max(events, key=lambda e: (e.grade, e.onset or self.now))
        self.sink.put("ae.nonheme_max_grade", float(worst.grade), [worst.source], worst.how)
        self.sink.put("ae.nonheme_event", _event_name(worst.event), [worst.source])
        if worst.onset is not None:
            days = round((self.now - worst.onset).total_seconds() / 86400, 2)
            self.sink.put("ae.nonheme_days", days, [worst.source], f"since {worst.onset.date()}")
        fluid = [e for e in events if self.terms["fluid-retention"].match(e.event)]
        if fluid:
            top = max(fluid, key=lambda e: e.grade)
            self.sink.put("ae.fluid_retention_grade", float(top.grade), [top.source], top.how)

    def _ungraded(self, events: list[UngradedEvent]) -> None:
        """Never silent: an adverse event the rules act on, but without a grade, is named on a card."""
        if not events:
            return
        first = events[0]
        # the clinician's words for the entry; its resource reference stays on the fact's source (explanation page)
        value = plain_label(f"{_event_name(first.event)} ({_RECORDED_IN.get(first.source.resource_type, 'record')})")
        others = [f"{e.source.resource_type}/{e.source.id}" for e in events[1:]]
        note = first.missing + (f"; also ungraded: {', '.join(others)}" if others else "")
        self.sink.put("ae.ungraded_event", value, [e.source for e in events], note)

    def _graded(
        self, conditions: list[tuple[Source, ConditionFacts, Concept | None]], ungraded: list[UngradedEvent]
    ) -> Iterator[GradedEvent]:
        yield from self._graded_conditions(conditions, ungraded)
        yield from self._adverse_event_resources(ungraded)
        yield from self._graded_observations()

    def _graded_conditions(
        self, conditions: list[tuple[Source, ConditionFacts, Concept | None]], ungraded: list[UngradedEvent]
    ) -> Iterator[GradedEvent]:
        """A CTCAE grade on any Condition makes it an adverse event; a severity word (mild, moderate, severe) only
        on a Condition that is a kind of adverse event the rules act on ("severe" CKD is no imatinib reaction)."""
        kinds = self.terms.union(_AE_KINDS)
        for src, condition, found in conditions:
            places = [
                Labelled("Condition.severity", condition.severity),
                *(Labelled("Condition.stage.summary", summary) for summary, _ in condition.stages),
            ]
            grade = grade_of(self.terms, {}, places)
            is_event = kinds.match(found) is not None
            if grade is None and is_event:
                grade = grade_of(self.terms, self.settings.severity_grades, places)
            if grade is not None:
                yield GradedEvent(src, grade.grade, found, condition.when, grade.how)
            elif is_event:
                missing = "no CTCAE grade or severity on Condition.severity or Condition.stage"
                ungraded.append(UngradedEvent(src, found, missing))

    def _adverse_event_resources(self, ungraded: list[UngradedEvent]) -> Iterator[GradedEvent]:
        for key in self.index.keys("AdverseEvent"):
            event = self.index.read(key, read_adverse_event)
            if event is None or event.outcome in _AE_OVER or event.actuality == "potential":
                continue
            policy = self.settings.severity_grades
            grades = [
                grade_of(self.terms, policy, [Labelled("AdverseEvent.severity", event.severity)]),
                serious_grade(self.terms, policy, event.seriousness),
            ]
            known = [g for g in grades if g is not None]
            src = source(key, event.when)
            if known:
                top: Grade = max(known, key=lambda g: g.grade)
                yield GradedEvent(src, top.grade, event.event, event.when, top.how)
            else:
                missing = "no CTCAE grade, severity or seriousness on AdverseEvent.severity/seriousness"
                ungraded.append(UngradedEvent(src, event.event, missing))

    def _graded_observations(self) -> Iterator[GradedEvent]:
        """Observations whose value is a CTCAE grade and whose code names the event."""
        oldest = self.now - timedelta(days=self.settings.ae_observation_max_age_days)
        for key, value in self.index.coded("Observation", "valueCodeableConcept"):
            if self.terms["ctcae-grades"].match(value) is None:
                continue
            obs = self.index.read(key, read_observation)
            when = obs.when if obs else None
            if obs is None or obs.status not in self.settings.observation_statuses or not when or when < oldest:
                continue
            grade = grade_of(self.terms, {}, [Labelled("Observation.value", obs.value_concept)])
            if grade is not None:
                yield GradedEvent(source(key, when), grade.grade, obs.code, when, grade.how)

    # --- recorded flags -----------------------------------------------------------------------------

    def flags(self, conditions: list[tuple[Source, ConditionFacts, Concept | None]]) -> None:
        # Most conditions name no flag at all: match them once against all flag sets.
        maybe = self.terms.union(_FLAG_SETS).match
        candidates = [c for c in conditions if maybe(c[2])]
        for set_name, fact in _FLAGS:
            found = self._flagged(self.terms[set_name], candidates, self.noted)
            if found is not None:
                self.sink.put(fact, True, [found])

    def _flagged(
        self,
        value_set: ValueSet,
        conditions: list[tuple[Source, ConditionFacts, Concept | None]],
        observations: list[tuple[tuple[str, str], Concept]],
    ) -> Source | None:
        for src, _, found in conditions:
            if value_set.match(found):
                return src
        for key in self.index.keys("Procedure"):
            procedure = self.index.read(key, read_procedure)
            if procedure is not None and procedure.status == "completed" and value_set.match(procedure.code):
                return source(key, None)  # R4 Procedure has none of the times ``effective`` read
        for key, found in observations:
            if value_set.match(found) and self._observed_true(key):
                obs = self.index.read(key, read_observation)
                return source(key, obs.when if obs else None)
        return None

    def _observed_true(self, key: tuple[str, str]) -> bool:
        obs = self.index.read(key, read_observation)
        if obs is None or obs.status not in self.settings.observation_statuses:
            return False
        return obs.answer is not False

    def leukaemia_related(self) -> None:
        value_set = self.terms["cytopenia-leukaemia-related"]
        for key, found in self.noted:
            if not value_set.match(found):
                continue
            obs = self.index.read(key, read_observation)
            if obs is None or obs.status not in self.settings.observation_statuses:
                continue
            answer = {True: "yes", False: "no", None: "unknown"}[obs.answer]
            self.sink.put("heme.cytopenia_leukaemia_related", answer, [source(key, obs.when)])
            return

    # --- comedications ------------------------------------------------------------------------------

    def comedications(self) -> None:
        meds = list(self._active_medications())
        topical = self.terms["topical-forms"]
        systemic = [m[:3] for m in meds if not m[3] and not topical.match(m[1])]
        if not systemic and not self._medication_list_supplied():
            return  # no medication data at all: absent, not "no perpetrator"
        perpetrators = [False] * len(systemic)
        for set_name, fact, name_fact in _PERPETRATORS:
            hits = [(src, self.terms[set_name].match(c), start) for src, c, start in systemic]
            found = [(src, m, start) for src, m, start in hits if m is not None]
            perpetrators = [p or h[1] is not None for p, h in zip(perpetrators, hits, strict=True)]
            checked = f"none among {len(systemic)} active systemic medication(s)"
            self.sink.put(fact, bool(found), [f[0] for f in found], "" if found else checked)
            if found and name_fact not in self.sink.facts:
                self.sink.put(name_fact, found[0][1].member.name, [found[0][0]], f"matched by {found[0][1].by}")
        self._perpetrator_start([(m[2], m[0]) for m, p in zip(systemic, perpetrators, strict=True) if p and m[2]])
        self._grapefruit([m[:3] for m in meds])

    def _medication_list_supplied(self) -> bool:
        drafts = set(self.index.request.context_draft_keys)
        keys = self.index.keys("MedicationRequest") + self.index.keys("MedicationStatement")
        return any(key not in drafts for key in keys)

    def _perpetrator_start(self, starts: list[tuple[datetime, Source]]) -> None:
        if starts:
            start, src = max(starts, key=lambda s: s[0])
            days = max(0.0, round((self.now - start).total_seconds() / 86400, 2))
            self.sink.put("comed.cyp3a4_days_since_start", days, [src])

    def _grapefruit(self, meds: list[tuple[Source, Concept | None, datetime | None]]) -> None:
        hits = [src for src, found, _ in meds if self.terms["grapefruit"].match(found)]
        for key, found in self.noted:
            if self.terms["grapefruit"].match(found) and self._observed_true(key):
                hits.append(source(key, None))
        if hits:
            self.sink.put("comed.grapefruit", True, hits[:1])

    def _active_medications(self) -> Iterator[tuple[Source, Concept | None, datetime | None, bool]]:
        """Active orders and statements, plus this session's draft orders (about to be co-prescribed)."""
        drafts = set(self.index.request.context_draft_keys)
        for kind, reader in (("MedicationRequest", read_request), ("MedicationStatement", read_statement)):
            for key in self.index.keys(kind):
                med = self.index.read(key, reader)
                is_draft = key in drafts
                if med is None or not is_draft and med.status != "active":
                    continue
                start = self.now if is_draft else _start(med, kind == "MedicationRequest")
                drug = product(self.index, key, med, self.terms["imatinib"])
                yield source(key, start), drug.concept, start, drug.imatinib is not None


def _stage_and_code(condition: ConditionFacts) -> list[Labelled]:
    stages = [
        labelled
        for summary, kind in condition.stages
        for labelled in (Labelled("Condition.stage.summary", summary), Labelled("Condition.stage.type", kind))
    ]
    return [*stages, Labelled("Condition.code", condition.code)]


def _indication_note(terms: Terminology, label: str, condition: ConditionFacts) -> str:
    name = {"CML": "cml", "GIST": "gist"}.get(label, "imatinib-other-indications")
    how = first_match(terms[name], [Labelled("Condition.code", condition.code)]) or "a match"
    status = condition.clinical_status.label if condition.clinical_status else "no clinical status"
    return f"{label} by {how}; clinical status {plain_label(status)}"


def _event_name(event: Concept | None) -> str:
    return plain_label(event.label) if event is not None else "adverse event"


def _start(med: MedicationFacts, is_order: bool) -> datetime | None:
    """An order's first dosage bounds, a statement's period, else when it was written or taken."""
    for dosage in med.dosages if is_order else ():
        bounds = dosage.timing.bounds if dosage.timing else None
        if bounds is not None and bounds.start:
            return parse.as_datetime(bounds.start)
    if med.period is not None and med.period.start:
        return parse.as_datetime(med.period.start)
    return parse.as_datetime(med.authored_on or med.effective)
