"""The discovery document, generated from the rules: one service per hook, prefetch for the facts it reads.

Only CDS Hooks 2.0 prefetch tokens are used, and `_sort=-date` only where the search parameter exists.
"""

from __future__ import annotations

from typing import Any

from cds.engine import conditions as c
from cds.engine.ruleset import RuleSet
from cds.engine.schema import HOOKS
from cds.fhir.terminology import Terminology

LOINC = "http://loinc.org"
LAB_VALUE_SETS = (
    "imatinib-level",
    "creatinine",
    "crcl-measured",
    "egfr",
    "bilirubin",
    "ast",
    "alt",
    "anc",
    "platelets",
    "body-weight",
    "body-height",
)

TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "medications": "MedicationRequest?patient={{context.patientId}}",
    "statements": "MedicationStatement?patient={{context.patientId}}",
    "administrations": "MedicationAdministration?patient={{context.patientId}}",
    "adverseEvents": "AdverseEvent?subject={{context.patientId}}",
}
# Without these the service cannot decide: missing and not fetchable -> 412. The others enrich the decision;
# when they cannot be had, the trace says what was not considered.
ESSENTIAL = frozenset({"patient", "conditions", "medications", "observations"})


def resource_type(template: str) -> str:
    return template.split("?")[0].split("/")[0]


# fact namespace -> the prefetch keys whose resources feed it
SOURCES = {
    "patient": ("patient", "observations"),
    "dx": ("conditions",),
    "regimen": ("medications", "statements", "administrations"),
    "level": ("observations", "medications", "statements", "administrations"),
    "renal": ("patient", "observations"),
    "hepatic": ("observations",),
    "heme": ("observations", "conditions"),
    "comed": ("medications", "statements"),
    "ae": ("conditions", "adverseEvents", "observations"),
    "response": ("conditions", "observations"),
    "adherence": ("conditions", "observations"),
    "gi": ("conditions", "procedures"),
    "pk": ("patient", "conditions", "observations", "medications", "statements", "administrations"),
    "tdm": ("patient", "conditions", "observations", "medications", "statements", "administrations"),
}
SERVICES = {
    "order-sign": (
        "imatinib-order-sign",
        "Imatinib dose and TDM check at signing",
        "Checks a draft imatinib order against renal and hepatic function, interacting drugs, toxicity "
        "and imatinib levels (Bayesian trough estimate); suggests the dose the label and local policy "
        "support.",
    ),
    "order-select": (
        "imatinib-order-select",
        "Imatinib dose and TDM check when selected",
        "The same checks as at signing, for the selected imatinib orders only.",
    ),
    "patient-view": (
        "imatinib-patient-view",
        "Imatinib therapeutic drug monitoring review",
        "For patients on imatinib: whether a level is due, how the latest level reads against the "
        "indication's target, and toxicity that calls for withholding or reducing the dose.",
    ),
}


def service_id(hook: str) -> str:
    return SERVICES[hook][0]


def hook_of(service: str) -> str | None:
    return next((hook for hook, (sid, _, _) in SERVICES.items() if sid == service), None)


def prefetch_for(rule_set: RuleSet, terminology: Terminology, hook: str) -> dict[str, str]:
    keys: set[str] = set()
    for rule in rule_set.rules:
        if hook in rule.hooks:
            for fact in c.facts_of(rule.when):
                keys.update(SOURCES.get(fact.split(".")[0], ()))
    keys.add("patient")
    templates = {key: TEMPLATES[key] for key in sorted(keys) if key in TEMPLATES}
    if "observations" in keys:
        templates["observations"] = observations_template(terminology)
    return templates


def observations_template(terminology: Terminology) -> str:
    codes = sorted(
        {
            code
            for name in LAB_VALUE_SETS
            if name in terminology.value_sets
            for member in terminology[name].members
            for system, code in member.codes
            if system == LOINC
        }
    )
    joined = ",".join(f"{LOINC}|{code}" for code in codes)
    return f"Observation?patient={{{{context.patientId}}}}&code={joined}&_sort=-date"


def discovery_document(rule_set: RuleSet, terminology: Terminology) -> dict[str, Any]:
    services = []
    for hook in HOOKS:
        sid, title, description = SERVICES[hook]
        services.append(
            {
                "hook": hook,
                "id": sid,
                "title": title,
                "description": description,
                "prefetch": prefetch_for(rule_set, terminology, hook),
                "usageRequirements": "Send the prefetch when you can; missing keys are fetched from fhirServer "
                "(needs fhirAuthorization for secured servers) or answered with 412.",
            }
        )
    return {"services": services}
