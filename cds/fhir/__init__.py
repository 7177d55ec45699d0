"""FHIR R4 input layer: a CDS Hooks request -> sourced facts, dose history and levels.

    request = parse_request(raw)                    # bytes | str | dict; InvalidInput names the JSON path
    record = extract_record(request, now=now)       # PatientRecord (frozen); now must be timezone-aware
    fact_values(record)                             # {"renal.crcl": 35.0, "regimen.new_start": True, ...}

The mapper reads only the elements its facts need, each checked against its FHIR datatype
(``cds.fhir.element``); the draft orders acted on and the patient are also validated whole with
fhir.resources' R4B models, in ``cds.fhir.parse`` only. Terminology comes from rules/terminology/*.yaml,
local policy from rules/mapping.yaml and fact names from rules/facts.yaml.
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
