"""Recorded decisions evaluated again with a (candidate) rule set, streamed one at a time.

Each decision of the audit log kept what recomputing it needs (``Outcome.inputs``); ``replay`` feeds every
recorded decision in a window through ``Pipeline.rerun`` at its own "now" and yields the recorded and the
recomputed advice side by side. Nothing is held across decisions, so memory stays flat however long the log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cds.audit import AuditStore
from cds.errors import CdsError
from cds.governance.advice import Advice, advice_of, differences, recorded_advice
from cds.pipeline import Outcome, Pipeline


@dataclass(frozen=True)
class Replayed:
    """One recorded decision and what the candidate advises on the same inputs."""

    seq: int
    hook_instance: str
    received: str
    before: Advice
    after: Advice | None  # None: it could not be recomputed (``problem`` says why)
    problem: str = ""
    outcome: Outcome | None = field(default=None, compare=False)
    made_by: str = ""  # the imatinib-cds version that made the recorded decision

    @property
    def differs(self) -> list[str]:
        return differences(self.before, self.after) if self.after is not None else []


def replay(store: AuditStore, pipeline: Pipeline, since: datetime | None = None) -> Iterator[Replayed]:
    """Every decision that gave advice (status ok), oldest first; refusals (4xx, 5xx) had no advice to change."""
    for entry in store.export(since, kind="decision"):
        payload = entry["payload"]
        if payload.get("status") == "ok":
            yield rerun_entry(pipeline, entry)


def rerun_entry(pipeline: Pipeline, entry: Mapping[str, Any]) -> Replayed:
    payload = entry["payload"]
    head = (int(entry["seq"]), str(entry["hook_instance"]), str(payload.get("received", "")))
    before = recorded_advice(payload)
    inputs = payload.get("inputs")
    if not isinstance(inputs, Mapping):
        return Replayed(*head, before, None, "recorded before decisions kept their inputs")
    try:
        outcome = pipeline.rerun(inputs, client=entry.get("client") or "")
    except CdsError as exc:  # e.g. a candidate whose rules derive a fact the mapper gives
        return Replayed(*head, before, None, f"{type(exc).__name__}: {exc}")
    return Replayed(*head, before, advice_of(outcome), outcome=outcome, made_by=str(inputs.get("version", "")))
