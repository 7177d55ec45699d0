"""Example requests varied in the ways that move a dose: ordered dose, CrCl, hepatic function, an inducer, a
hold and its reason. Built from fhir_examples/ by editing the FHIR resources, so the whole pipeline (mapping,
rules, composer, cards) is exercised as an EHR would call it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.conftest import ROOT

EXAMPLES = ROOT / "fhir_examples"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
TABLET_100 = {"system": RXNORM, "code": "403878", "display": "imatinib 100 MG Oral Tablet"}


@dataclass(frozen=True)
class Variant:
    name: str
    request: dict[str, Any]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def entries(request: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    bundle = request["prefetch"][key] if key != "draftOrders" else request["context"]["draftOrders"]
    return [e["resource"] for e in bundle.get("entry", [])]


def resource(request: Mapping[str, Any], key: str, rid: str) -> dict[str, Any]:
    return next(r for r in entries(request, key) if r["id"] == rid)


def set_dose(order: dict[str, Any], daily_mg: float) -> None:
    """The order as 100 mg tablets, once daily (twice daily from 800 mg/day)."""
    per_day = 2 if daily_mg >= 800 else 1
    dosage = order["dosageInstruction"][0]
    dosage["timing"]["repeat"]["frequency"] = per_day
    dosage["timing"]["repeat"].pop("timeOfDay", None)
    quantity = {"value": daily_mg / per_day, "unit": "mg", "system": UCUM, "code": "mg"}
    dosage["doseAndRate"] = [{"doseQuantity": quantity}]
    dosage["text"] = f"{daily_mg / per_day:g} mg {per_day} times daily"
    order.pop("medicationReference", None)
    order["medicationCodeableConcept"] = {"coding": [dict(TABLET_100)], "text": TABLET_100["display"]}


def set_lab(request: Mapping[str, Any], rid: str, value: float) -> None:
    resource(request, "observations", rid)["valueQuantity"]["value"] = value


def add_inducer(request: dict[str, Any]) -> None:
    rifampin = copy.deepcopy(resource(load("order-sign-rifampin-coprescribed.json"), "draftOrders", "rx-rif-draft"))
    patient = {"reference": f"Patient/{request['context']['patientId']}"}
    rifampin.update(id="rx-rif-active", status="active", subject=patient)
    rifampin["authoredOn"] = "2026-11-01"
    request["prefetch"]["medications"].setdefault("entry", []).append({"resource": rifampin})


def new_starts() -> Iterator[Variant]:
    """CML chronic phase (68-year-old man, 70 kg: CrCl = 70 / SCr) and GIST, new starts."""
    bases = (("order-sign-new-start-moderate-renal.json", "cml"), ("order-sign-severe-hepatic-impairment.json", "gist"))
    for base, dx in bases:
        for dose in (100, 200, 300, 400, 600, 800):
            for scr in (0.9, 1.6, 2.5, 4.7):
                for bili_severe in (False, True):
                    for inducer in (False, True):
                        request = load(base)
                        set_dose(entries(request, "draftOrders")[0], dose)
                        set_lab(request, "lab-creat", scr)
                        if dx == "cml" and bili_severe:
                            set_lab(request, "lab-bili", 4.5)  # ULN 1.2 in the example: 3.75x ULN
                        if dx == "gist" and not bili_severe:
                            set_lab(request, "lab-bili", 1.0)
                        if inducer:
                            add_inducer(request)
                        name = f"{dx}-new-{dose}mg-scr{scr}-{'bili-severe' if bili_severe else 'bili-ok'}"
                        yield Variant(name + ("-rifampin" if inducer else ""), request)


HOLD_REASONS = {"hepatotoxicity": "hepatotoxicity", "cytopenia": "neutropenia", "nonheme": "fluid retention"}


def resumes() -> Iterator[Variant]:
    """Chronic-phase CML, imatinib on hold (hepatotoxicity, neutropenia or fluid retention, recovered), resume order."""
    for reason, text in HOLD_REASONS.items():
        for before in (200, 300, 400, 600, 800):
            for dose in (200, 300, 400, 600):
                for scr in (0.8, 1.6, 2.5):
                    request = load("order-sign-hepatotoxicity-on-treatment.json")
                    held = resource(request, "medications", "rx-ima-active")
                    held["status"] = "on-hold"
                    held["statusReason"] = {"text": text}
                    set_dose(held, before)
                    set_dose(entries(request, "draftOrders")[0], dose)
                    set_lab(request, "lab-alt", 60)  # 1.5x ULN: recovered
                    set_lab(request, "lab-ast", 60)
                    set_lab(request, "lab-creat", scr)
                    yield Variant(f"resume-{reason}-from-{before}mg-draft-{dose}mg-scr{scr}", request)


def apply_actions(request: Mapping[str, Any], actions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The request an EHR sends after the clinician accepts a suggestion: its deletes, then creates, then
    updates applied to the draft orders (CDS Hooks: FHIR transaction order)."""
    accepted = copy.deepcopy(dict(request))
    bundle = accepted["context"]["draftOrders"]
    entries = {(e["resource"]["resourceType"], e["resource"]["id"]): e for e in bundle["entry"]}
    for action in sorted(actions, key=lambda a: ["delete", "create", "update"].index(a["type"])):
        if action["type"] == "delete":
            kind, rid = action["resourceId"].split("/")
            del entries[(kind, rid)]
        elif action["resource"]["resourceType"] == "MedicationRequest":
            resource = copy.deepcopy(action["resource"])
            entries[(resource["resourceType"], resource["id"])] = {"resource": resource}
    bundle["entry"] = list(entries.values())
    return accepted


def apply_medication_only(request: Mapping[str, Any], actions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the CDS Hooks Sandbox does with an accepted update (cds-hooks.md §13): the draft takes the suggested
    medicationCodeableConcept and keeps its own dosage; deletes and creates are applied as sent."""
    accepted = copy.deepcopy(dict(request))
    bundle = accepted["context"]["draftOrders"]
    entries = {(e["resource"]["resourceType"], e["resource"]["id"]): e for e in bundle["entry"]}
    for action in actions:
        if action["type"] == "delete":
            del entries[tuple(action["resourceId"].split("/"))]
        elif action["type"] == "update" and action["resource"]["resourceType"] == "MedicationRequest":
            draft = entries[("MedicationRequest", action["resource"]["id"])]["resource"]
            draft["medicationCodeableConcept"] = copy.deepcopy(action["resource"]["medicationCodeableConcept"])
    bundle["entry"] = list(entries.values())
    return accepted


def examples() -> Iterator[Variant]:
    for path in sorted(EXAMPLES.glob("*.json")):
        yield Variant(path.stem, load(path.name))


def all_variants() -> list[Variant]:
    return [*examples(), *new_starts(), *resumes()]
