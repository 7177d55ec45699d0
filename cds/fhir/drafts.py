"""Several imatinib drafts in one request read as one regimen: renewals, split orders and duplicates.

The reading (clinical-rules.md §9.1 "split and repeated orders"; how the service reads them is local policy):
- The imatinib drafts of one request together are the regimen being ordered: their doses add
  (400 mg tablet + 2 x 100 mg tablets = 600 mg/day), as lines of one order would.
- A draft renews an active order when its priorPrescription names that order, or, without priorPrescription,
  when it orders the same product at the same dose. Either way it replaces that order (as every draft replaces
  the therapy it follows): the renewed dose is never added to the active one.
- Two drafts of the same product at the same dose are a split dose only when both give clock times
  (timing.repeat.timeOfDay) and the times do not overlap (400 mg at 08:00 + 400 mg at 20:00). Otherwise they
  are a possible duplicate: the second is counted once, not twice, and a card names both orders, so a
  duplicate never silently doubles the dose.
- A draft identical to an active order that is not renewing it (its priorPrescription names another order)
  would leave both active: a possible duplicate too.
- Orders on record (not drafts) that start at the same time with the same status were signed together: they are
  one regimen too, read the same way (merge_concurrent). Orders that start at different times follow each other
  (the later replaces the earlier), as before.
- When drafts renew some of the orders signed together (the 100 mg tablets run out first), the others continue:
  their doses are added to the drafts' (400 mg continuing + 2 x 100 mg renewed = 600 mg/day).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time

from cds.dates import day
from cds.fhir.dosing import Dosing, combine_dosing
from cds.fhir.therapy import CURRENT, Therapy
from cds.fhir.types import Source
from cds.numbers import format_number

Key = tuple[str, str]
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class DraftPart:
    """One draft and what it contributes to the regimen."""

    therapy: Therapy
    counted: bool  # False: a possible duplicate of ``duplicate_of``, left out of the sum
    renews: Key | None = None
    renews_why: str = ""  # "priorPrescription" | "same product and dose"
    duplicate_of: Key | None = None

    def describe(self, names: Mapping[Key, str]) -> str:
        mg = self.therapy.dosing.daily_mg
        dose = f"{format_number(mg)} mg/day" if mg is not None else "dose not read"
        text = f"{named(self.therapy.key, names)} {dose}"
        if self.duplicate_of is not None and not self.counted:
            text += f", not counted: possible duplicate of {named(self.duplicate_of, names)}"
        if self.renews is not None:
            text += f", renews {named(self.renews, names)} ({self.renews_why})"
        return text


@dataclass(frozen=True)
class DraftRegimen:
    parts: tuple[DraftPart, ...]
    dosing: Dosing  # the counted drafts (and continuing orders) combined
    duplicates: tuple[tuple[Key, Key], ...]  # (draft, the other order), each pair once
    continuing: tuple[Therapy, ...] = ()  # orders signed with a renewed one and not renewed themselves
    names: Mapping[Key, str] = field(default_factory=dict)  # each order as a clinician knows it (clinician_name)

    @property
    def counted(self) -> list[DraftPart]:
        return [p for p in self.parts if p.counted]

    @property
    def sources(self) -> list[Source]:
        """Where the regimen's dose comes from: the counted drafts, then the continuing orders."""
        return [p.therapy.source for p in self.counted] + [t.source for t in self.continuing]

    def renewals(self) -> str:
        """Which drafts renew which orders (each replaces the order it renews; the doses are not added)."""
        return "; ".join(
            f"{self.name(p.therapy.key)} renews {self.name(p.renews)} ({p.renews_why}) and replaces it"
            for p in self.parts
            if p.renews is not None
        )

    def name(self, key: Key) -> str:
        return named(key, self.names)

    def composition(self) -> str:
        """How the total was made, for card text, the fact note and the trace (the sources name the resources)."""
        described = [p.describe(self.names) for p in self.parts]
        described += [
            f"{self.name(t.key)} {_mg(t.dosing)} continues (signed with a renewed order)" for t in self.continuing
        ]
        if len(self.counted) + len(self.continuing) < 2:
            return "; ".join(described)
        shown = _mg(self.dosing)
        added = f" and {_orders(len(self.continuing), 'continuing order')}" if self.continuing else ""
        return f"sum of {_orders(len(self.counted), 'draft order')}{added} = {shown}: " + "; ".join(described)


def compose(
    drafts: Sequence[Therapy],
    records: Sequence[Therapy],
    members: Mapping[Key, tuple[Therapy, ...]] | None = None,
    names: Mapping[Key, str] | None = None,
) -> DraftRegimen:
    """The drafts of one request as one regimen. ``records`` are the patient's non-draft therapy records, orders
    signed together merged (merge_concurrent); ``members`` gives the orders each merged record was made of;
    ``names`` each order as the prescriber knows it (clinician_name), for card text."""
    groups = [(r, (members or {}).get(r.key, (r,))) for r in records if r.status in CURRENT]
    current = [order for _, group in groups for order in group]
    parts: list[DraftPart] = []
    duplicates: list[tuple[Key, Key]] = []
    for draft in drafts:
        twin = next((p.therapy for p in parts if p.counted and _duplicates(draft, p.therapy)), None)
        if twin is not None:  # counted once: the twin already stands for it (and for any renewal)
            duplicates.append((draft.key, twin.key))
            parts.append(DraftPart(draft, False, duplicate_of=twin.key))
            continue
        renews, why = _renewal(draft, current)
        for order in current:
            if renews not in (order.key, *order.members) and _same_regimen(draft, order):
                duplicates.append((draft.key, order.key))  # both would stay active
        parts.append(DraftPart(draft, True, renews, why))
    renewed = {p.renews for p in parts if p.counted and p.renews is not None}
    continuing = [
        order
        for _, group in groups
        if len(group) > 1 and renewed & {o.key for o in group}
        for order in group
        if order.key not in renewed
    ]
    dosing = _combined([*(p.therapy for p in parts if p.counted), *continuing])
    return DraftRegimen(tuple(parts), dosing, tuple(dict.fromkeys(duplicates)), tuple(continuing), names or {})


def _combined(counted: list[Therapy]) -> Dosing:
    """The orders' dosage lines read together, each with its own tablet strength."""
    if len(counted) == 1:
        return counted[0].dosing
    unread = next((t for t in counted if t.dosing.daily_mg is None), None)
    if unread is not None:
        return Dosing(None, None, (), f"{order_name(unread.key)}: {unread.dosing.note}")
    return combine_dosing([(line, t.strength_mg) for t in counted for line in t.dosages])


def _renewal(draft: Therapy, current: Sequence[Therapy]) -> tuple[Key | None, str]:
    target = _reference_key(draft.prior) if draft.prior else None
    if target is not None:
        return target, "priorPrescription"
    same = next((order for order in current if _same_regimen(draft, order)), None)
    return (same.key, "same product and dose") if same else (None, "")


def _reference_key(reference: str) -> Key | None:
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "MedicationRequest":
        return ("MedicationRequest", parts[-1])
    return None


def _same_product(a: Therapy, b: Therapy) -> bool:
    """The same tablet strength (brand and generic of one strength are one product), else the same concept."""
    if a.strength_mg is not None or b.strength_mg is not None:
        return a.strength_mg == b.strength_mg
    return a.product_name is not None and a.product_name == b.product_name


def _same_regimen(a: Therapy, b: Therapy) -> bool:
    """Same product, same mg/day and the same number of doses a day."""
    da, db = a.dosing, b.dosing
    return (
        _same_product(a, b)
        and da.daily_mg is not None
        and da.daily_mg == db.daily_mg
        and da.doses_per_day == db.doses_per_day
    )


def _duplicates(a: Therapy, b: Therapy) -> bool:
    """Identical drafts, unless both give clock times that do not overlap (a dose split over the day)."""
    if not _same_regimen(a, b):
        return False
    times_a, times_b = _times(a.dosing), _times(b.dosing)
    split = bool(times_a) and bool(times_b) and not times_a & times_b
    return not split


def _times(dosing: Dosing) -> set[time]:
    return {clock for clock, _ in dosing.schedule}


def clinician_name(therapy: Therapy) -> str:
    """ "draft imatinib 400 MG Oral Tablet", "active order imatinib 100 MG Oral Tablet of 2 Feb 2026": how the
    prescriber knows an order (its resource id is on the fact's sources, for reviewers)."""
    record = "order" if therapy.key[0] == "MedicationRequest" else "medication statement"
    kind = "draft" if therapy.status == "draft" else f"{therapy.status} {record}"
    since = f" of {day(therapy.start)}" if therapy.start and kind != "draft" else ""
    return f"{kind} {therapy.product_name or 'imatinib'}{since}"


def named(key: Key, names: Mapping[Key, str]) -> str:
    """The order as the prescriber knows it when ``names`` has it, else its resource reference."""
    return names.get(key) or order_name(key)


def order_name(key: Key) -> str:
    """``MedicationRequest/<id>`` for card text; an id that is not a FHIR id is not shown (it is request text)."""
    return f"{key[0]}/{key[1]}" if _FHIR_ID.fullmatch(key[1]) else f"{key[0]} (id not shown: not a FHIR id)"


@dataclass(frozen=True)
class Concurrent:
    records: list[Therapy]  # orders started together merged into one record each
    duplicates: tuple[tuple[Key, Key], ...]
    parts: tuple[str, ...]  # how each merged record was made, for the trace
    members: dict[Key, tuple[Therapy, ...]]  # merged record's key -> the orders it was made of


def merge_concurrent(records: Sequence[Therapy]) -> Concurrent:
    """Orders on record that start at the same time with the same status are one regimen (a 400 mg and a 100 mg
    tablet order signed together): one record with the doses added. Of identical ones (same product and dose,
    no separate clock times) one is kept and the pair is a possible duplicate."""
    out: list[Therapy] = []
    duplicates: list[tuple[Key, Key]] = []
    parts: list[str] = []
    members: dict[Key, tuple[Therapy, ...]] = {}
    groups: dict[tuple[object, str], list[Therapy]] = {}
    for record in records:  # sorted by start: the groups keep that order
        groups.setdefault((record.start, record.status), []).append(record)
    for grouped in groups.values():
        kept: list[Therapy] = []
        for record in grouped:
            twin = next((k for k in kept if _duplicates(record, k)), None)
            if twin is None:
                kept.append(record)
            else:
                duplicates.append((record.key, twin.key))
        if len(kept) == 1:
            out.append(kept[0])
            continue
        strengths = {k.strength_mg for k in kept}
        merged = replace(
            kept[0],
            dosing=_combined(kept),
            strength_mg=strengths.pop() if len(strengths) == 1 else None,
            product_name=None,
            members=tuple(k.key for k in kept),
        )
        out.append(merged)
        members[merged.key] = tuple(kept)
        shown = [f"{order_name(k.key)} {_mg(k.dosing)}" for k in kept]
        parts.append(f"orders started together, read as one regimen of {_mg(merged.dosing)}: " + "; ".join(shown))
    return Concurrent(out, tuple(duplicates), tuple(parts), members)


def _mg(dosing: Dosing) -> str:
    return f"{format_number(dosing.daily_mg)} mg/day" if dosing.daily_mg is not None else "dose not read"


def _orders(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("s" if count != 1 else "")
