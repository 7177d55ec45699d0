"""FHIR R4 input layer: CDS Hooks requests -> sourced facts, dose history and levels.

>>> request = parse_request(path.read_bytes())                      # doctest: +SKIP
>>> record = extract_record(request, now=datetime.now(UTC))         # doctest: +SKIP
>>> fact_values(record)["renal.crcl"]                               # doctest: +SKIP
"""

from cds.fhir.parse import parse_request
from cds.fhir.record import default_settings, default_terminology, default_vocabulary, extract_record
from cds.fhir.settings import MappingSettings, load_settings
from cds.fhir.terminology import Terminology, ValueSet, load_terminology
from cds.fhir.types import (
    Covariates,
    DoseEvent,
    DoseSource,
    FactValue,
    HookRequest,
    LevelSample,
    PatientRecord,
    Source,
    SourcedFact,
    fact_values,
)

__all__ = [
    "Covariates",
    "DoseEvent",
    "DoseSource",
    "FactValue",
    "HookRequest",
    "LevelSample",
    "MappingSettings",
    "PatientRecord",
    "Source",
    "SourcedFact",
    "Terminology",
    "ValueSet",
    "default_settings",
    "default_terminology",
    "default_vocabulary",
    "extract_record",
    "fact_values",
    "load_settings",
    "load_terminology",
    "parse_request",
]
