"""Decisions and feedback posted through the real service, for the feedback statistics tests (issue 16 item 5).

The audit clock is pinned (``AuditClock``) so that entries fall into known ISO weeks; the service's own clock is
the examples' clock as everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.cards.build import OVERRIDE_SYSTEM
from tests.conftest import postgres_schema
from tests.service.conftest import example, service_for

RENAL = "order-sign-new-start-moderate-renal.json"  # one dose card carrying IMA-RENAL-020 and IMA-RENAL-050
EGFR = "order-sign-new-start-egfr-only.json"  # that dose card and a missing-data card (IMA-RENAL-060)
TDM = "patient-view-tdm-due.json"  # one monitoring card (IMA-TDMIND-007) with a trough order
DOSE_LABEL = "Change to 200 mg once daily: 2 x 100 mg tablets"
TROUGH_LABEL = "Order an imatinib trough level"
WEEK_48 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # ISO week 2026-W48 (Monday 23 November)
WEEK_49 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 2026-W49
SCHEMA = "feedback_stats_test"


class AuditClock(datetime):
    """Stands in for datetime in cds.audit.chain: entries are stamped ``AuditClock.at``."""

    at = WEEK_48

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> AuditClock:
        at = cls.at
        return cls(at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond, tzinfo=at.tzinfo)


def pin_audit_clock(monkeypatch: pytest.MonkeyPatch) -> type[AuditClock]:
    monkeypatch.setattr("cds.audit.chain.datetime", AuditClock)
    monkeypatch.setattr(AuditClock, "at", WEEK_48)
    return AuditClock


def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A SQLite file, or (CI) a PostgreSQL schema of this module's own, dropped afterwards."""
    with postgres_schema(SCHEMA, kind, tmp_path) as url:
        yield url


@dataclass
class Shown:
    """A decision the service returned: its request and its cards."""

    body: dict[str, Any]
    cards: list[dict[str, Any]]

    def card(self, topic: str) -> dict[str, Any]:
        return next(c for c in self.cards if c["source"]["topic"]["code"] == topic)


def show(client: TestClient, name: str, hook_instance: str) -> Shown:
    body = dict(example(name), hookInstance=hook_instance)
    response = client.post(service_for(body), json=body)
    assert response.status_code == 200, response.text
    return Shown(body, response.json()["cards"])


def answer(client: TestClient, shown: Shown, *items: dict[str, Any]) -> None:
    response = client.post(service_for(shown.body) + "/feedback", json={"feedback": list(items)})
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": len(items)}


def accepted(card: dict[str, Any], *labels: str) -> dict[str, Any]:
    ids = [s["uuid"] for label in labels for s in card["suggestions"] if s["label"] == label]
    assert len(ids) == len(labels), [s["label"] for s in card.get("suggestions", [])]
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": i} for i in ids],
        "outcomeTimestamp": "2026-11-25T12:05:00Z",
    }


def overridden(
    card: dict[str, Any], code: str | None = None, comment: str | None = None, system: str = OVERRIDE_SYSTEM
) -> dict[str, Any]:
    reason: dict[str, Any] = {}
    if code is not None:
        reason["reason"] = {"system": system, "code": code}
    if comment is not None:
        reason["userComment"] = comment
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:05:00Z"}
    return {**item, "overrideReason": reason} if reason else item


HOSTILE_COMMENT = "<script>alert(1)</script> patient Jane Doe refused"
HOSTILE_CODE = "<img src=x onerror=alert(1)>"


def post_scenario(client: TestClient, clock: type[AuditClock]) -> None:
    """Nine cards over two ISO weeks and the feedback on them; EXPECTED is what the statistics must say.

    Week 48: renal-1 accepted (dose change and trough order; its feedback comes in week 49), renal-2 accepted
    (dose change), renal-3 overridden (clinical-judgement, a hostile comment). Week 49: renal-4 overridden and
    then accepted (the trough order: the latest counts), renal-5 without feedback, egfr-1's missing-data card
    overridden (already-addressed) and its dose card without feedback, tdm-1 overridden with a reason the card
    did not offer, tdm-2 overridden without a reason; one refused call (status http-400, not counted).
    """
    clock.at = WEEK_48
    renal = [show(client, RENAL, f"renal-{n}") for n in range(1, 4)]
    answer(client, renal[1], accepted(renal[1].card("dose"), DOSE_LABEL))
    answer(client, renal[2], overridden(renal[2].card("dose"), "clinical-judgement", HOSTILE_COMMENT))
    clock.at = WEEK_49
    answer(client, renal[0], accepted(renal[0].card("dose"), DOSE_LABEL, TROUGH_LABEL))
    renal += [show(client, RENAL, f"renal-{n}") for n in (4, 5)]
    answer(client, renal[3], overridden(renal[3].card("dose"), "data-incorrect"))
    answer(client, renal[3], accepted(renal[3].card("dose"), TROUGH_LABEL))
    egfr = show(client, EGFR, "egfr-1")
    answer(client, egfr, overridden(egfr.card("missing-data"), "already-addressed"))
    tdm = [show(client, TDM, f"tdm-{n}") for n in (1, 2)]
    answer(client, tdm[0], overridden(tdm[0].card("monitoring"), HOSTILE_CODE, HOSTILE_COMMENT, system="urn:x"))
    answer(client, tdm[1], overridden(tdm[1].card("monitoring")))
    refused = dict(example(RENAL), hookInstance="refused-1", hook="patient-view")
    assert client.post(service_for(example(RENAL)), json=refused).status_code == 400


def figures(shown: int, accepted: int, overridden: int, no_feedback: int) -> dict[str, int]:
    return {"shown": shown, "accepted": accepted, "overridden": overridden, "no_feedback": no_feedback}


_RENAL_DOSE_CARD = {
    **figures(6, 3, 1, 2),
    "accepted_suggestions": {DOSE_LABEL: 2, TROUGH_LABEL: 2},
    "override_reasons": {"clinical-judgement": 1},
    "weeks": {"2026-W48": figures(3, 2, 1, 0), "2026-W49": figures(3, 1, 0, 2)},
}
EXPECTED = {
    "IMA-RENAL-020": _RENAL_DOSE_CARD,
    "IMA-RENAL-050": _RENAL_DOSE_CARD,
    "IMA-RENAL-060": {
        **figures(1, 0, 1, 0),
        "accepted_suggestions": {},
        "override_reasons": {"already-addressed": 1},
        "weeks": {"2026-W49": figures(1, 0, 1, 0)},
    },
    "IMA-TDMIND-007": {
        **figures(2, 0, 2, 0),
        "accepted_suggestions": {},
        "override_reasons": {"(none)": 1, "(not offered)": 1},
        "weeks": {"2026-W49": figures(2, 0, 2, 0)},
    },
}
