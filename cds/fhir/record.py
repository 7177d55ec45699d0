"""extract_record: a parsed CDS Hooks request -> the patient's sourced facts, doses and levels."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from cds.engine.vocabulary import Vocabulary, load_vocabulary
from cds.fhir.body import BodyMapper
from cds.fhir.clinical import ClinicalMapper
from cds.fhir.draft_drugs import matters, read_draft_drugs
from cds.fhir.index import ResourceIndex
from cds.fhir.inducers import InducerMapper
from cds.fhir.labs import Labs
from cds.fhir.regimen import RegimenMapper, RegimenResult
from cds.fhir.reproductive import ReproductiveMapper
from cds.fhir.settings import RULES_DIR, MappingSettings, load_settings
from cds.fhir.sink import FactSink
from cds.fhir.terminology import Terminology, load_terminology
from cds.fhir.types import Covariates, DraftDrug, HookRequest, PatientRecord


def extract_record(
    request: HookRequest,
    *,
    now: datetime,
    vocabulary: Vocabulary | None = None,
    settings: MappingSettings | None = None,
    terminology: Terminology | None = None,
) -> PatientRecord:
    """Map the request's resources to facts; raises InvalidInput only for resources the answer needs."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    vocabulary = vocabulary or default_vocabulary()
    settings = settings or default_settings()
    terminology = terminology or default_terminology()
    warnings = list(request.warnings)
    index = ResourceIndex(request, warnings)
    drafts = read_draft_drugs(index, terminology, settings.relevance_interacting_value_sets)
    index.require(d.key for d in drafts if d.acted_on and matters(d))
    sink = FactSink(vocabulary, warnings)
    labs = Labs(index, now, settings.observation_statuses, settings.comma_before_three_digits)
    # Order matters: Cockcroft-Gault needs age, sex and weight; regimen facts need nothing else.
    BodyMapper(index, sink, labs, terminology, settings, now).run()
    ClinicalMapper(index, sink, terminology, settings, now).run()
    ReproductiveMapper(index, sink, terminology, settings, now).run()
    InducerMapper(index, sink, terminology, now).run()
    regimen = RegimenMapper(index, sink, terminology, settings, now).run(labs)
    return _record(request, now, sink, regimen, warnings, drafts)


def _record(
    request: HookRequest,
    now: datetime,
    sink: FactSink,
    regimen: RegimenResult,
    warnings: list[str],
    drafts: tuple[DraftDrug, ...],
) -> PatientRecord:
    return PatientRecord(
        hook=request.hook,
        hook_instance=request.hook_instance,
        patient_id=request.patient_id,
        now=now,
        facts=dict(sorted(sink.facts.items())),
        doses=regimen.doses.doses,
        dose_source=regimen.doses.source,
        dose_note=regimen.doses.note,
        levels=regimen.levels,
        covariates=_covariates(sink),
        draft_orders=regimen.draft_orders,
        warnings=tuple(dict.fromkeys(warnings)),
        draft_parts=regimen.draft_parts,
        drafts=drafts,
    )


def _covariates(sink: FactSink) -> Covariates:
    sex, indication = sink.value("patient.sex"), sink.value("dx.indication")
    return Covariates(
        sex=sex if isinstance(sex, str) else None,
        age_years=sink.number("patient.age"),
        weight_kg=sink.number("patient.weight"),
        indication=indication if isinstance(indication, str) else None,
    )


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    return load_vocabulary(RULES_DIR / "facts.yaml")


@lru_cache(maxsize=1)
def default_settings() -> MappingSettings:
    return load_settings(RULES_DIR / "mapping.yaml")


@lru_cache(maxsize=1)
def default_terminology() -> Terminology:
    return load_terminology(RULES_DIR / "terminology")
