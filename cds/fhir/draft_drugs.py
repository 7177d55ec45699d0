"""What each draft order orders, read from the request's JSON before any resource is validated.

The relevance stage (cds/relevance.py) needs to know which drafts are about imatinib: an imatinib draft, a draft
of a drug that interacts with it (the value sets named in rules/mapping.yaml ``relevance``), or neither. The
answer also decides which drafts are validated whole: a draft the answer depends on (imatinib, interacting, or
one whose medication cannot be told) must be readable or the request is a 400 naming the field; a draft that
names no medication (the CDS Hooks Sandbox's order-select on screen load, without ``intent``) or an unrelated
drug's draft is read leniently, so its missing fields never turn "nothing to say" into an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cds.fhir.dosing import referenced_medication
from cds.fhir.drafts import order_name
from cds.fhir.index import ResourceIndex, raw_concept
from cds.fhir.request_text import plain_label
from cds.fhir.terminology import Concept, Terminology
from cds.fhir.types import DraftDrug, DraftKind

Key = tuple[str, str]
_MEDICATION_ORDERS = {"MedicationRequest"}  # DSTU2 MedicationOrder arrives upgraded (cds/fhir/parse.py)
_UNREADABLE = object()  # a medication element that is there but is not one


def read_draft_drugs(
    index: ResourceIndex, terminology: Terminology, interacting: Sequence[str]
) -> tuple[DraftDrug, ...]:
    """Every draft of this patient (another patient's drafts are not in the index), in request order."""
    request = index.request
    acted_on = set(request.draft_keys)
    mine = {key for kind in {k[0] for k in request.context_draft_keys} for key in index.keys(kind)}
    return tuple(
        _draft(index, key, key in acted_on, terminology, interacting)
        for key in request.context_draft_keys
        if key in mine
    )


def matters(draft: DraftDrug) -> bool:
    """A draft whose fields the answer depends on when it is acted on: validated whole (strict)."""
    return draft.kind in ("imatinib", "interacting", "unidentified")


def _draft(
    index: ResourceIndex, key: Key, acted_on: bool, terminology: Terminology, interacting: Sequence[str]
) -> DraftDrug:
    order = order_name(key)
    if key[0] not in _MEDICATION_ORDERS:
        return DraftDrug(key, order, acted_on, "not-a-medication", key[0])
    found = _medication(index, key)
    if found is _UNREADABLE:
        return DraftDrug(key, order, acted_on, "unidentified", None)
    if not isinstance(found, Concept) or not (found.codings or found.text):
        return DraftDrug(key, order, acted_on, "no-medication", None)
    label = plain_label(found.label)
    if terminology["imatinib"].match(found) is not None:
        return DraftDrug(key, order, acted_on, "imatinib", label)
    classes = () if terminology["topical-forms"].match(found) else _classes(found, terminology, interacting)
    kind: DraftKind = "interacting" if classes else "unrelated"
    return DraftDrug(key, order, acted_on, kind, label, classes)


def _classes(found: Concept, terminology: Terminology, interacting: Sequence[str]) -> tuple[str, ...]:
    return tuple(name for name in interacting if terminology[name].match(found) is not None)


def _medication(index: ResourceIndex, key: Key) -> object:
    """The draft's medication as a Concept; None when it names none; _UNREADABLE when it names one that cannot
    be read (not a CodeableConcept or Reference) or found (a reference to a Medication the request lacks)."""
    raw = index.raw(key)
    if raw.get("medicationCodeableConcept") is not None:
        return raw_concept(raw["medicationCodeableConcept"]) or _UNREADABLE
    reference = raw.get("medicationReference")
    if reference is None:
        return None
    if not isinstance(reference, Mapping):
        return _UNREADABLE
    return _referenced(index, key, reference)


def _referenced(index: ResourceIndex, key: Key, reference: Mapping[str, Any]) -> object:
    target, display = reference.get("reference"), reference.get("display")
    medication = referenced_medication(index, key, target) if isinstance(target, str) else None
    if medication is not None:
        return raw_concept(medication.get("code")) or _UNREADABLE
    if isinstance(display, str) and display.strip():
        return Concept((), display)
    return _UNREADABLE if target is not None else None
