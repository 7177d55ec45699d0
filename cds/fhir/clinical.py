"""Diagnosis, CML phase, adverse events, clinician-recorded flags and CYP3A4 comedications."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds.fhir import parse
from cds.fhir.dosing import product
from cds.fhir.element import first_code
from cds.fhir.findings import ConditionFacts, read_adverse_event, read_condition, read_procedure
from cds.fhir.index import ResourceIndex, source
from cds.fhir.medication import MedicationFacts, read_request, read_statement
from cds.fhir.observation import read_observation
from cds.fhir.settings import MappingSettings
from cds.fhir.sink import FactSink
from cds.fhir.terminology import Concept, Terminology, ValueSet
from cds.fhir.types import Source

_INACTIVE = {"inactive", "remission", "resolved"}
_UNCONFIRMED = {"refuted", "entered-in-error"}
_GRADE_TEXT = re.compile(r"\bgrade\s*([0-5])\b", re.IGNORECASE)
_AE_SEVERITY = {"mild": 1, "moderate": 2, "severe": 3}  # R4 AdverseEvent.severity, read as CTCAE 1-3
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


@dataclass(frozen=True)
class GradedEvent:
    source: Source
    grade: int
    event: Concept | None
    onset: datetime | None


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
        for key in self.index.keys("Condition"):
            condition = self.index.read(key, read_condition)
            if condition is None:
                continue
            if condition.clinical_status in _INACTIVE or condition.verification_status in _UNCONFIRMED:
                continue
            yield source(key, condition.when), condition, condition.code

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
        self.sink.put("dx.indication", labels[0], [hits[0][0]])
        if labels[0] == "CML":
            self._phase(hits)

    def _phase(self, hits: list[tuple[Source, ConditionFacts]]) -> None:
        for src, condition in hits:
            phase = self._phase_of(condition)
            if phase is not None:
                self.sink.put("dx.cml_phase", phase, [src])
                return
        self.sink.put("dx.cml_phase", "unknown", [hits[0][0]], "no stage or configured phase code")

    def _phase_of(self, condition: ConditionFacts) -> str | None:
        concepts = [condition.code]
        for summary, kind in condition.stages:
            concepts += [summary, kind]
        for found in concepts:
            for coding in found.codings if found else ():
                phase = self.settings.cml_phase_codes.get((coding.system or "", coding.code or ""))
                if phase:
                    return phase
        texts = " ".join((f.label if f else "") for f in concepts[1:]).lower()
        return next((p for w, p in self.settings.cml_phase_words.items() if w in texts), None)

    # --- adverse events -----------------------------------------------------------------------------

    def adverse_events(self, conditions: list[tuple[Source, ConditionFacts, Concept | None]]) -> None:
        heme = self.terms["heme-adverse-events"]
        events = [e for e in self._graded(conditions) if not heme.match(e.event)]
        if not events:
            return
        worst = max(events, key=lambda e: (e.grade, e.onset or self.now))
        self.sink.put("ae.nonheme_max_grade", float(worst.grade), [worst.source], "CTCAE grade")
        self.sink.put("ae.nonheme_event", worst.event.label if worst.event else "adverse event", [worst.source])
        if worst.onset is not None:
            days = round((self.now - worst.onset).total_seconds() / 86400, 2)
            self.sink.put("ae.nonheme_days", days, [worst.source], f"since {worst.onset.date()}")
        fluid = [e for e in events if self.terms["fluid-retention"].match(e.event)]
        if fluid:
            top = max(fluid, key=lambda e: e.grade)
            self.sink.put("ae.fluid_retention_grade", float(top.grade), [top.source], "CTCAE grade")

    def _graded(self, conditions: list[tuple[Source, ConditionFacts, Concept | None]]) -> Iterator[GradedEvent]:
        for src, condition, found in conditions:
            grade = self._grade([condition.severity, *(summary for summary, _ in condition.stages)])
            if grade is not None:
                yield GradedEvent(src, grade, found, condition.when)
        yield from self._adverse_event_resources()
        yield from self._graded_observations()

    def _adverse_event_resources(self) -> Iterator[GradedEvent]:
        for key in self.index.keys("AdverseEvent"):
            event = self.index.read(key, read_adverse_event)
            if event is None or event.outcome in _AE_OVER or event.actuality == "potential":
                continue
            grade = self._grade([event.severity])
            severity = first_code(event.severity)
            if grade is None and severity in _AE_SEVERITY:
                grade = _AE_SEVERITY[str(severity)]
                self.index.warnings.append(f"AdverseEvent/{key[1]}: severity '{severity}' read as grade")
            if grade is not None:
                yield GradedEvent(source(key, event.when), grade, event.event, event.when)

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
            grade = self._grade([obs.value_concept])
            if grade is not None:
                yield GradedEvent(source(key, when), grade, obs.code, when)

    def _grade(self, concepts: list[Concept | None]) -> int | None:
        """A CTCAE grade from a coded grade, else from text such as 'Grade 3'."""
        for found in filter(None, concepts):
            match = self.terms["ctcae-grades"].match(found)
            if match is not None and match.member.grade is not None:
                return match.member.grade
            for text in (found.text, *(c.display for c in found.codings)):
                hit = _GRADE_TEXT.search(text or "")
                if hit:
                    return int(hit.group(1))
        return None

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
        return obs.value_boolean is not False and obs.value_code not in ("no", "N", "373067005")

    def leukaemia_related(self) -> None:
        value_set = self.terms["cytopenia-leukaemia-related"]
        for key, found in self.noted:
            if not value_set.match(found):
                continue
            obs = self.index.read(key, read_observation)
            if obs is None or obs.status not in self.settings.observation_statuses:
                continue
            answer = _yes_no(obs.value_boolean, obs.value_code)
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


def _start(med: MedicationFacts, is_order: bool) -> datetime | None:
    """An order's first dosage bounds, a statement's period, else when it was written or taken."""
    for dosage in med.dosages if is_order else ():
        bounds = dosage.timing.bounds if dosage.timing else None
        if bounds is not None and bounds.start:
            return parse.as_datetime(bounds.start)
    if med.period is not None and med.period.start:
        return parse.as_datetime(med.period.start)
    return parse.as_datetime(med.authored_on or med.effective)


def _yes_no(boolean: bool | None, code: str | None) -> str:
    if boolean is not None:
        return "yes" if boolean else "no"
    if code in ("yes", "Y", "373066001"):
        return "yes"
    if code in ("no", "N", "373067005"):
        return "no"
    return "unknown"
