"""Pregnancy and breastfeeding status (scope rules, clinical-rules.md §9.2).

A status Observation (LOINC 82810-3, 63895-7) answers with a code or a boolean; an active, confirmed Condition
coded as pregnancy or breastfeeding counts too. The most recent statement wins. A status recorded as unknown, or
an Observation older than the fact's max_age_days, gives no fact: the rules treat "not recorded" as unknown,
never as "not pregnant".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from cds.fhir.condition_readers import diagnosis_ends
from cds.fhir.findings import read_condition
from cds.fhir.index import ResourceIndex, source
from cds.fhir.observation import ObservationFacts, read_observation
from cds.fhir.settings import MappingSettings
from cds.fhir.sink import FactSink
from cds.fhir.terminology import Terminology
from cds.fhir.types import FactValue, Source

Found = tuple[datetime, FactValue, Source]


class ReproductiveMapper:
    def __init__(
        self, index: ResourceIndex, sink: FactSink, terminology: Terminology, settings: MappingSettings, now: datetime
    ) -> None:
        self.index, self.sink, self.terms, self.settings, self.now = index, sink, terminology, settings, now

    def run(self) -> None:
        pregnancy = self._observed("pregnancy-status-question", "patient.pregnancy_status", self._pregnancy_answer)
        pregnancy += self._conditions("pregnant", "pregnant")
        breastfeeding = self._observed("breastfeeding-status-question", "patient.breastfeeding", self._yes_no)
        breastfeeding += self._conditions("breastfeeding", True)
        self._put("patient.pregnancy_status", pregnancy)
        self._put("patient.breastfeeding", breastfeeding)

    def _put(self, name: str, found: list[Found]) -> None:
        if found:
            when, value, src = max(found, key=lambda f: f[0])
            self.sink.put(name, value, [src], "most recent status")

    def _observed(
        self, question: str, fact: str, answer: Callable[[ObservationFacts], FactValue | None]
    ) -> list[Found]:
        asked = self.terms[question]
        spec = self.sink.vocabulary[fact]
        oldest = self.now - timedelta(days=spec.max_age_days) if spec.max_age_days else None
        found: list[Found] = []
        for key, concept in self.index.coded("Observation"):
            if not asked.match(concept):
                continue
            obs = self.index.read(key, read_observation)
            if obs is None or obs.status not in self.settings.observation_statuses or obs.when is None:
                continue
            if obs.when > self.now or (oldest is not None and obs.when < oldest):
                continue
            value = answer(obs)
            if value is not None:
                found.append((obs.when, value, source(key, obs.when)))
        return found

    def _pregnancy_answer(self, obs: ObservationFacts) -> FactValue | None:
        value = obs.value_concept
        if self.terms["not-pregnant"].match(value):
            return "not-pregnant"
        return "pregnant" if self.terms["pregnant"].match(value) else None

    @staticmethod
    def _yes_no(obs: ObservationFacts) -> FactValue | None:
        return obs.answer

    def _conditions(self, value_set: str, value: FactValue) -> list[Found]:
        wanted = self.terms[value_set]
        found: list[Found] = []
        for key, concept in self.index.coded("Condition"):
            if not wanted.match(concept) or (value_set == "pregnant" and self.terms["not-pregnant"].match(concept)):
                continue
            condition = self.index.read(key, read_condition)
            if condition is None or diagnosis_ends(
                self.terms, condition.clinical_status, condition.verification_status
            ):
                continue
            found.append((condition.when or self.now, value, source(key, condition.when)))
        return found
