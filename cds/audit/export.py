"""Audit entries out of the database: JSON lines or CSV, whole or de-identified, and a slice checked on its own.

A plain export keeps every field an entry's hash covers, so ``verify_slice`` can recompute each hash from the
previous entry's hash and the entry's content. A de-identified export changes the payloads (what is removed and
what is replaced is listed in ``deidentify`` and docs/deploy.md), so its hashes cannot be recomputed: its
entries are marked ``deidentified`` and ``read_slice`` refuses them.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cds.audit.chain import canonical_json, entry_hash
from cds.errors import CdsError

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = (
    "seq",
    "created_at",
    "kind",
    "service_id",
    "hook_instance",
    "client",
    "status",
    "patient_ref",
    "ruleset_version",
    "fired_rules",
    "card_summaries",
    "feedback_outcome",
    "cards",
    "payload",
    "prev_hash",
    "entry_hash",
    "deidentified",
)
MIN_KEY_BYTES = 32

# FHIR resource types whose "Type/id" references name a patient's records (R4); ids after them are pseudonymised
_RESOURCE_TYPES = (
    "AdverseEvent AllergyIntolerance Appointment CarePlan CareTeam Claim Composition Condition Coverage Device "
    "DiagnosticReport DocumentReference Encounter EpisodeOfCare FamilyMemberHistory Flag Goal Group ImagingStudy "
    "Immunization List Location Medication MedicationAdministration MedicationDispense MedicationRequest "
    "MedicationStatement Observation Organization Patient Person Practitioner PractitionerRole Procedure "
    "Provenance QuestionnaireResponse RelatedPerson ServiceRequest Specimen Task"
).split()
_REFERENCE = re.compile(r"\b(" + "|".join(_RESOURCE_TYPES) + r")/([A-Za-z0-9\-.]{1,64})")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


class ExportError(CdsError):
    code = "audit-export"


class Pseudonyms:
    """Keyed pseudonyms: ``prefix-`` and 16 hex digits of HMAC-SHA256(key, prefix + NUL + value). The same key
    gives the same pseudonym for the same value, in this export and in any other made with it; without the key
    a pseudonym cannot be traced back by trying candidate values."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ExportError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes; this one has {len(key)}")
        self._key = key

    def __call__(self, prefix: str, value: str) -> str:
        mac = hmac.new(self._key, f"{prefix}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"{prefix}-{mac[:16]}"


def deidentify(entry: Mapping[str, Any], pseudonyms: Pseudonyms) -> dict[str, Any]:
    """The entry without what identifies the patient or the call, as listed in docs/deploy.md:

    * removed: ``payload.inputs`` (the request as mapped, the patient record, "now"), ``payload.pk.inputs``
      (covariates, dose and level times), the clinician's free-text ``userComment`` of feedback, the cards'
      ``links`` (explanation URLs carry the hookInstance and an access token) and the FHIR resources inside
      suggestions (the rewritten draft order: only its resourceType is kept);
    * replaced by keyed pseudonyms: the hookInstance (``hook-``), ``patient_ref`` (``ref-``, as in references), the
      ``request_digest`` (``request-``), the client's token id ``jti`` (``token-``), every UUID anywhere in the
      entry: card and suggestion uuids, a hookInstance quoted in text (``uuid-``, the same pseudonym wherever the
      UUID appears, so feedback still meets its card), and the id of every FHIR reference ``Type/id`` in any text
      (``Type/ref-...``), e.g. the fact sources;
    * kept: sequence number, times, kind, service, client issuer and tenant, status, facts and their values
      (age, sex, weight, laboratory values), dates in fact sources, fired rules, card texts, dose, PK summary,
      feedback outcomes and reason codes, and the entry hashes (which name the original entries to whoever holds
      the full log). It is a pseudonymised extract, not an anonymous one.
    """
    payload = dict(entry["payload"]) if isinstance(entry.get("payload"), Mapping) else {}
    hook_instance = str(entry.get("hook_instance") or "")
    payload.pop("inputs", None)
    if isinstance(payload.get("pk"), Mapping):
        payload["pk"] = {k: v for k, v in payload["pk"].items() if k != "inputs"}
    if payload.get("patient_ref"):  # the pseudonym of the id in "Patient/<id>" references too
        patient_id = str(payload["patient_ref"]).removeprefix("Patient/")
        payload["patient_ref"] = pseudonyms("ref", f"Patient/{patient_id}")
    if payload.get("request_digest"):
        payload["request_digest"] = pseudonyms("request", str(payload["request_digest"]))
    if isinstance(payload.get("client"), Mapping) and payload["client"].get("jti"):
        payload["client"] = {**payload["client"], "jti": pseudonyms("token", str(payload["client"]["jti"]))}
    if isinstance(payload.get("cards"), list):
        payload["cards"] = [_card_without_links(c) for c in payload["cards"]]
    if isinstance(payload.get("feedback"), Mapping):
        payload["feedback"] = _feedback_without_comment(payload["feedback"])
    hook = pseudonyms("hook", hook_instance) if hook_instance else hook_instance
    clean = _replace_identifiers(payload, pseudonyms, hook_instance, hook)
    cards = entry.get("cards")
    if isinstance(cards, str):
        cards = canonical_json([pseudonyms("uuid", str(u).lower()) for u in json.loads(cards)])
    return {
        **{k: entry.get(k) for k in ("seq", "kind", "service_id", "created_at", "client", "prev_hash", "entry_hash")},
        "hook_instance": hook,
        "cards": cards,
        "payload": clean,
        "deidentified": True,
    }


def _card_without_links(card: Any) -> Any:
    if not isinstance(card, Mapping):
        return card
    out = {k: v for k, v in card.items() if k != "links"}
    suggestions = []
    for suggestion in card.get("suggestions") or []:
        if isinstance(suggestion, Mapping):
            actions = [_action_without_resource(a) for a in suggestion.get("actions") or []]
            suggestion = {**suggestion, "actions": actions}
        suggestions.append(suggestion)
    if "suggestions" in card:
        out["suggestions"] = suggestions
    return out


def _action_without_resource(action: Any) -> Any:
    if not isinstance(action, Mapping):
        return action
    out = {k: v for k, v in action.items() if k not in ("resource", "resourceId")}
    resource = action.get("resource")
    if isinstance(resource, Mapping):
        out["resource"] = {"resourceType": resource.get("resourceType")}
    return out


def _feedback_without_comment(item: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(item)
    reason = out.get("overrideReason")
    if isinstance(reason, Mapping):
        out["overrideReason"] = {k: v for k, v in reason.items() if k != "userComment"}
    return out


def _replace_identifiers(value: Any, pseudonyms: Pseudonyms, hook_instance: str, hook: str) -> Any:
    if isinstance(value, str):
        text = value.replace(hook_instance, hook) if hook_instance else value
        text = _UUID.sub(lambda m: pseudonyms("uuid", m.group(0).lower()), text)
        return _REFERENCE.sub(lambda m: f"{m.group(1)}/{pseudonyms('ref', m.group(0))}", text)
    if isinstance(value, Mapping):
        return {k: _replace_identifiers(v, pseudonyms, hook_instance, hook) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_identifiers(v, pseudonyms, hook_instance, hook) for v in value]
    return value


# --- writing -------------------------------------------------------------------------------------------


def write_jsonl(entries: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    count = 0
    for entry in entries:
        out.write(json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":")) + "\n")
        count += 1
    return count


def write_csv(entries: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """One row per entry: readable columns first (status, patient, rule set, fired rules, card summaries,
    feedback outcome), then every field the entry's hash covers (``payload`` as canonical JSON) and the hashes."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in entries:
        writer.writerow(_csv_row(entry))
        count += 1
    return count


def _csv_row(entry: Mapping[str, Any]) -> list[str]:
    payload = entry.get("payload") if isinstance(entry.get("payload"), Mapping) else {}
    assert isinstance(payload, Mapping)
    fired = [f"{f.get('rule')}@{f.get('version')}" for f in payload.get("fired") or [] if isinstance(f, Mapping)]
    cards = [str(c.get("summary", "")) for c in payload.get("cards") or [] if isinstance(c, Mapping)]
    feedback = payload.get("feedback") if isinstance(payload.get("feedback"), Mapping) else {}
    assert isinstance(feedback, Mapping)
    values = {
        **{k: entry.get(k) for k in ("seq", "created_at", "kind", "service_id", "hook_instance", "client")},
        "status": payload.get("status"),
        "patient_ref": payload.get("patient_ref"),
        "ruleset_version": (payload.get("ruleset") or {}).get("version"),
        "fired_rules": " ".join(fired),
        "card_summaries": " | ".join(cards),
        "feedback_outcome": feedback.get("outcome"),
        "cards": entry.get("cards"),
        "payload": canonical_json(payload),
        "prev_hash": entry.get("prev_hash"),
        "entry_hash": entry.get("entry_hash"),
        "deidentified": "yes" if entry.get("deidentified") else "no",
    }
    return ["" if values[c] is None else str(values[c]) for c in CSV_COLUMNS]


# --- reading back and checking a slice -----------------------------------------------------------------


@dataclass(frozen=True)
class SliceEntry:
    """The fields an entry's hash covers, as the export gave them (``payload`` as the canonical JSON text)."""

    seq: int
    kind: str
    hook_instance: str
    service_id: str
    created_at: str
    payload: str
    client: str | None
    cards: str | None
    prev_hash: str
    entry_hash: str

    def hashed(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "hook_instance": self.hook_instance,
            "service_id": self.service_id,
            "created_at": self.created_at,
            "payload": self.payload,
            "client": self.client,
            "cards": self.cards,
        }


@dataclass(frozen=True)
class SliceReport:
    entries: int
    first_seq: int | None
    last_seq: int | None
    first_time: str
    last_time: str
    broken_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


DEIDENTIFIED = (
    "this export is de-identified: its payloads were changed after the entries were hashed, so no hash can be "
    "recomputed. Verify the full export of the same entries (audit export without --deidentify) instead"
)


def read_slice(path: Path) -> list[SliceEntry]:
    """The entries of an export (JSON lines or CSV, told apart by the first character); ExportError when the
    file is de-identified or not an export."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if text.lstrip().startswith("{"):
        rows = _jsonl_rows(path, text)
    elif text.startswith("seq,"):
        rows = _csv_rows(path, text)
    else:
        raise ExportError(f"{path} is neither an audit export in JSON lines nor one in CSV")
    return rows


def _jsonl_rows(path: Path, text: str) -> list[SliceEntry]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry.get("deidentified"):
                raise ExportError(DEIDENTIFIED)
            rows.append(_slice_entry(entry, canonical_json(entry["payload"])))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ExportError(f"{path}:{number}: not an audit entry ({type(exc).__name__}: {exc})") from exc
    return rows


def _csv_rows(path: Path, text: str) -> list[SliceEntry]:
    rows = []
    for number, row in enumerate(csv.DictReader(io.StringIO(text)), 2):
        if row.get("deidentified") == "yes":
            raise ExportError(DEIDENTIFIED)
        try:
            scoped = bool(row["cards"])  # entries from before client scoping recorded neither client nor cards
            entry = {**row, "client": row["client"] if scoped else None, "cards": row["cards"] if scoped else None}
            rows.append(_slice_entry(entry, row["payload"]))
            readable = dict(zip(CSV_COLUMNS, _csv_row({**entry, "payload": json.loads(row["payload"])}), strict=True))
        except (ValueError, KeyError, TypeError) as exc:
            raise ExportError(f"{path}:{number}: not an audit entry ({type(exc).__name__}: {exc})") from exc
        edited = [c for c in CSV_COLUMNS if c not in ("payload", "deidentified") and readable[c] != row.get(c)]
        if edited:  # the hash covers the payload; the readable columns must say what it says
            raise ExportError(
                f"{path}:{number}: column {edited[0]} of entry {row['seq']} disagrees with the entry's payload "
                "(the file was edited after export)"
            )
    return rows


def _slice_entry(entry: Mapping[str, Any], payload: str) -> SliceEntry:
    return SliceEntry(
        seq=int(entry["seq"]),
        kind=str(entry["kind"]),
        hook_instance=str(entry["hook_instance"]),
        service_id=str(entry["service_id"]),
        created_at=str(entry["created_at"]),
        payload=payload,
        client=None if entry.get("client") is None else str(entry["client"]),
        cards=None if entry.get("cards") is None else str(entry["cards"]),
        prev_hash=str(entry["prev_hash"]),
        entry_hash=str(entry["entry_hash"]),
    )


def verify_slice(rows: Sequence[SliceEntry]) -> SliceReport:
    """Each entry's hash recomputed from the previous entry's hash and its own content; consecutive sequence
    numbers, each linked to the one before. The first entry's own link is taken as given: it is what a
    checkpoint or the database must confirm."""
    if not rows:
        return SliceReport(0, None, None, "", "", None, "")
    first, last = rows[0], rows[-1]
    expected = first.seq
    prev = first.prev_hash
    for count, row in enumerate(rows):
        problem = ""
        if row.seq != expected:
            problem = f"expected entry {expected} but found {row.seq} (entries removed or reordered)"
        elif row.prev_hash != prev:
            problem = "its link to the previous entry is broken"
        elif entry_hash(prev, row.hashed()) != row.entry_hash:
            problem = "its content was changed after it was written"
        if problem:
            return SliceReport(count, first.seq, last.seq, first.created_at, last.created_at, row.seq, problem)
        prev, expected = row.entry_hash, expected + 1
    return SliceReport(len(rows), first.seq, last.seq, first.created_at, last.created_at)


def anchored_at(rows: Sequence[SliceEntry], signed: Mapping[int, str]) -> tuple[int | None, str]:
    """The latest signed checkpoint inside the slice that its entry meets, or the first one it does not meet
    (with the reason). ``signed``: sequence number -> head hash, from checkpoints whose signatures held."""
    by_seq = {row.seq: row.entry_hash for row in rows}
    latest = None
    for seq in sorted(s for s in signed if s in by_seq):
        if signed[seq] != by_seq[seq]:
            return None, f"entry {seq} differs from the signed checkpoint at that entry (the chain was rewritten)"
        latest = seq
    return latest, ""
