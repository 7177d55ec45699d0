"""How each rule's cards fared: shown, accepted (per suggestion), overridden (per reason), left without feedback,
per ISO week; and which rules are overridden so often that they may be causing alert fatigue (issue 16).

Definitions (docs/deploy.md, "Feedback statistics"):

* A card counts as **shown** when a decision with status "ok" returned it. It counts for every rule whose finding
  it carries: each "fired" entry of the decision's trace names the card (its topic code) the rule's finding was
  placed on, so one card merging several rules' findings is shown once for each of them, and a finding folded
  into the third card ("Also") counts for that card. A rule has at most one card per decision.
* **accepted** / **overridden**: the outcome of the feedback on that card. A card with several feedback items
  counts once, with its latest (highest audit sequence number): a clinician who overrode and then accepted
  accepted. Accepted suggestions are counted by the label the card gave them; override reasons by code when the
  card offered that coding, else "(not offered)", and "(none)" without a reason. Free-text comments are never
  counted or shown.
* **no_feedback**: shown cards without any feedback, so shown = accepted + overridden + no_feedback.
* **weeks**: the ISO week (UTC) in which the card was shown; its feedback counts in that week.
* **fatigue candidate**: shown at least ``min_shown`` times and overridden / shown strictly above the threshold.

Only entries written at or after ``since`` count (as ``audit export --since``): feedback on a card shown before
then is left out (``feedback_unmatched``). The log is read ordered by hookInstance, so a decision and its
feedback arrive together; what is held is the cards of one hookInstance and the counters, however long the log.
The rule pages count a window of the latest entries instead (``first_seq``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from itertools import groupby
from typing import TYPE_CHECKING, Any

from sqlalchemy import RowMapping, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from cds.audit.tables import entries

if TYPE_CHECKING:
    from cds.audit.store import AuditStore

NOT_OFFERED = "(not offered)"
NO_REASON = "(none)"
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_SHOWN = 10


@dataclass(frozen=True)
class FatigueRule:
    """When a rule is flagged as an alert-fatigue candidate: a governance setting, not a clinical one."""

    threshold: float = DEFAULT_THRESHOLD  # override rate (overridden / shown) that must be exceeded
    min_shown: int = DEFAULT_MIN_SHOWN  # fewer cards shown than this are too few to judge

    @classmethod
    def create(cls, threshold: object, min_shown: object) -> FatigueRule:
        return cls(checked_threshold(threshold), checked_min_shown(min_shown))

    def flags(self, shown: int, overridden: int) -> bool:
        """Exact arithmetic: a rate exactly at the threshold is not above it (0.57 is not above 57/100)."""
        return shown >= self.min_shown and Fraction(overridden, shown) > Fraction(str(self.threshold))


def checked_threshold(value: object) -> float:
    """An override rate from 0 to 1 (ValueError otherwise); text (an option, an environment variable) is read."""
    try:
        number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not 0 <= number <= 1:  # also NaN
        raise ValueError(f"got {value!r}, must be a number from 0 to 1 (an override rate)")
    return number


def checked_min_shown(value: object) -> int:
    """A whole number, at least 1 (ValueError otherwise); text is read."""
    try:
        number = int(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < 1:
        raise ValueError(f"got {value!r}, must be a whole number, at least 1")
    return number


@dataclass
class Tally:
    shown: int = 0
    accepted: int = 0
    overridden: int = 0

    @property
    def no_feedback(self) -> int:
        return self.shown - self.accepted - self.overridden

    def as_json(self) -> dict[str, int]:
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "no_feedback": self.no_feedback,
        }


@dataclass
class RuleStats:
    title: str = ""
    total: Tally = field(default_factory=Tally)
    weeks: dict[str, Tally] = field(default_factory=dict)
    accepted_suggestions: Counter[str] = field(default_factory=Counter)
    override_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def override_rate(self) -> float | None:
        return self.total.overridden / self.total.shown if self.total.shown else None


@dataclass
class FeedbackStats:
    fatigue: FatigueRule
    since: datetime | None = None
    decisions: int = 0  # decisions with status "ok" in the period
    cards_shown: int = 0
    feedback_superseded: int = 0  # feedback items replaced by a later one on the same card
    feedback_unmatched: int = 0  # feedback on a card not shown in the period (or shown again since)
    cards_unattributed: int = 0  # cards of decisions that did not record which rules they carry
    first_shown: str | None = None  # created_at of the earliest and latest decision counted
    last_shown: str | None = None
    rules: dict[str, RuleStats] = field(default_factory=dict)

    def fatigue_candidate(self, rule_id: str) -> bool:
        rule = self.rules.get(rule_id)
        return rule is not None and self.fatigue.flags(rule.total.shown, rule.total.overridden)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "first_shown": self.first_shown,
            "last_shown": self.last_shown,
            "decisions": self.decisions,
            "cards_shown": self.cards_shown,
            "feedback_superseded": self.feedback_superseded,
            "feedback_unmatched": self.feedback_unmatched,
            "cards_unattributed": self.cards_unattributed,
            "threshold": self.fatigue.threshold,
            "min_shown": self.fatigue.min_shown,
            "rules": {rule_id: self._rule_json(rule_id) for rule_id in sorted(self.rules)},
        }

    def _rule_json(self, rule_id: str) -> dict[str, Any]:
        rule = self.rules[rule_id]
        rate = rule.override_rate
        return {
            "title": rule.title,
            **rule.total.as_json(),
            "override_rate": None if rate is None else round(rate, 4),
            "fatigue_candidate": self.fatigue_candidate(rule_id),
            "accepted_suggestions": dict(sorted(rule.accepted_suggestions.items())),
            "override_reasons": dict(sorted(rule.override_reasons.items())),
            "weeks": {week: rule.weeks[week].as_json() for week in sorted(rule.weeks)},
        }


def collect_stats(
    store: AuditStore, fatigue: FatigueRule, *, since: datetime | None = None, first_seq: int | None = None
) -> FeedbackStats:
    """The figures of the entries written at or after ``since``. Read ordered by hookInstance, only one
    hookInstance's cards are held at a time. ``first_seq`` bounds the entries read instead (the rule pages'
    window of the latest entries): they are read in order, a range of the primary key, and the cards awaiting
    feedback are held for the whole window."""
    stats = FeedbackStats(fatigue, since)
    rows = _rows(store, since, first_seq)
    if first_seq is not None:
        _count_entries(rows, stats)
        return stats
    for _, group in groupby(rows, key=lambda row: row["hook_instance"]):
        _count_entries(group, stats)
    return stats


def _rows(store: AuditStore, since: datetime | None, first_seq: int | None) -> Iterator[RowMapping]:
    columns = (entries.c.seq, entries.c.kind, entries.c.hook_instance, entries.c.created_at)
    query = select(*columns, *_payload_parts(store.engine.dialect.name))
    query = query.where(entries.c.kind.in_(("decision", "feedback")))
    if since is not None:
        query = query.where(entries.c.created_at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
    if first_seq is not None:
        query = query.where(entries.c.seq >= first_seq).order_by(entries.c.seq)
    else:
        query = query.order_by(entries.c.hook_instance, entries.c.seq)
    with store.reading(stream=True) as conn:  # SQLite: a snapshot, no write lock held over the service's appends
        result = conn.execute(query)
        try:
            yield from result.mappings()
        finally:  # a reader that stops early must not leave the server-side cursor to the collector
            result.close()


_PARTS = ("status", "fired", "cards", "decision_seq", "feedback")  # what the figures read of a payload


def _payload_parts(dialect: str) -> list[Any]:
    """The parts of the payload the figures need, taken out by the database: a decision's payload is mostly facts,
    PK and the mapped request (some 40 kB), which the database parses in C, outside the service's GIL."""
    if dialect == "postgresql":
        document = cast(entries.c.payload, JSONB)
        return [document[part].label(part) for part in _PARTS]
    return [func.json_extract(entries.c.payload, f"$.{part}").label(part) for part in _PARTS]


def _payload(row: RowMapping) -> dict[str, Any]:
    """SQLite gives arrays and objects as JSON text, PostgreSQL as Python values."""
    return {p: json.loads(row[p]) if isinstance(row[p], str) and p != "status" else row[p] for p in _PARTS}


@dataclass
class _ShownCard:
    """A card of one decision, what the statistics need of it, and the latest feedback on it."""

    seq: int
    week: str
    rules: tuple[str, ...]
    suggestions: Mapping[str, str]  # uuid -> label
    reasons: frozenset[tuple[str, str]]  # (system, code) offered
    feedback: Mapping[str, Any] | None = None


def _count_entries(rows: Iterable[RowMapping], stats: FeedbackStats) -> None:
    """Entries in the order they were written (of one hookInstance, or of a window). Feedback can only be given
    on the latest decision that showed a card (the card index points there), so a card shown again closes its
    earlier showing: only the latest showing of each card uuid is held."""
    open_cards: dict[str, _ShownCard] = {}
    for row in rows:
        payload = _payload(row)
        if row["kind"] == "decision" and payload.get("status") == "ok":
            for uuid, card in _shown_cards(int(row["seq"]), str(row["created_at"]), payload, stats):
                if uuid in open_cards:
                    _count_card(open_cards.pop(uuid), stats)
                open_cards[uuid] = card
        elif row["kind"] == "feedback":
            _attach(payload, open_cards, stats)
    for card in open_cards.values():
        _count_card(card, stats)


def _shown_cards(
    seq: int, created_at: str, payload: Mapping[str, Any], stats: FeedbackStats
) -> Iterator[tuple[str, _ShownCard]]:
    stats.decisions += 1
    stats.first_shown = min(stats.first_shown or created_at, created_at)
    stats.last_shown = max(stats.last_shown or created_at, created_at)
    fired = [f for f in payload.get("fired") or [] if isinstance(f, Mapping) and f.get("rule")]
    for f in fired:
        if f.get("card"):
            stats.rules.setdefault(str(f["rule"]), RuleStats()).title = str(f.get("title") or "")
    week = iso_week(created_at)
    for card in payload.get("cards") or []:
        if not isinstance(card, Mapping) or not card.get("uuid"):
            continue
        topic = ((card.get("source") or {}).get("topic") or {}).get("code")
        rules = tuple(dict.fromkeys(str(f["rule"]) for f in fired if topic and f.get("card") == topic))
        offered = [s for s in card.get("suggestions") or [] if isinstance(s, Mapping) and s.get("uuid")]
        suggestions = {str(s["uuid"]): str(s.get("label", "")) for s in offered}
        reasons = frozenset((str(r.get("system")), str(r.get("code"))) for r in card.get("overrideReasons") or [])
        yield str(card["uuid"]), _ShownCard(seq, week, rules, suggestions, reasons)


def _attach(payload: Mapping[str, Any], open_cards: Mapping[str, _ShownCard], stats: FeedbackStats) -> None:
    item = payload.get("feedback")
    card = open_cards.get(str(item.get("card"))) if isinstance(item, Mapping) else None
    decision_seq = payload.get("decision_seq")
    if card is None or (decision_seq is not None and decision_seq != card.seq):
        stats.feedback_unmatched += 1
        return
    if card.feedback is not None:
        stats.feedback_superseded += 1
    card.feedback = item


def _count_card(card: _ShownCard, stats: FeedbackStats) -> None:
    stats.cards_shown += 1
    if not card.rules:
        stats.cards_unattributed += 1
    outcome = (card.feedback or {}).get("outcome")
    for rule_id in card.rules:
        rule = stats.rules.setdefault(rule_id, RuleStats())
        for tally in (rule.total, rule.weeks.setdefault(card.week, Tally())):
            tally.shown += 1
            tally.accepted += outcome == "accepted"
            tally.overridden += outcome == "overridden"
        if outcome == "accepted":
            rule.accepted_suggestions.update(_accepted(card))
        elif outcome == "overridden":
            rule.override_reasons[_reason(card)] += 1


def _accepted(card: _ShownCard) -> list[str]:
    chosen = (card.feedback or {}).get("acceptedSuggestions") or []
    ids = dict.fromkeys(str(s.get("id")) for s in chosen if isinstance(s, Mapping))
    return [card.suggestions.get(i, NOT_OFFERED) for i in ids]


def _reason(card: _ShownCard) -> str:
    override = (card.feedback or {}).get("overrideReason")
    reason = override.get("reason") if isinstance(override, Mapping) else None
    if not isinstance(reason, Mapping):
        return NO_REASON
    coding = (str(reason.get("system")), str(reason.get("code")))
    return coding[1] if coding in card.reasons else NOT_OFFERED


def iso_week(created_at: str) -> str:
    """``2026-W48``: the ISO 8601 week (UTC) of an audit timestamp."""
    year, week, _ = datetime.fromisoformat(created_at).astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


# --- the report as text (imatinib-cds audit stats) -----------------------------------------------------------

_COLUMNS = ("shown", "accepted", "overridden", "no feedback")


def format_report(stats: FeedbackStats) -> str:
    """A table of every rule whose cards were shown, then each rule's suggestions, reasons and weeks."""
    lines = [_heading(stats)]
    if not stats.rules:
        return "\n".join([*lines, "No card was shown in this period."]) + "\n"
    lines.append(
        f"! = alert-fatigue candidate: overridden on more than {stats.fatigue.threshold:.0%} of the cards shown, "
        f"with at least {stats.fatigue.min_shown} shown"
    )
    width = max(len("rule"), *(len(r) for r in stats.rules))
    lines += ["", _row("rule", width, (*_COLUMNS, "overridden %"))]
    for rule_id in sorted(stats.rules):
        rule = stats.rules[rule_id]
        flag = " !" if stats.fatigue_candidate(rule_id) else ""
        lines.append(_row(rule_id, width, (*_counts(rule.total), _percent(rule.override_rate))) + flag)
    for rule_id in sorted(stats.rules):
        lines += ["", *_details(rule_id, stats.rules[rule_id])]
    return "\n".join([*lines, *_footnotes(stats)]) + "\n"


def _heading(stats: FeedbackStats) -> str:
    since = f" since {stats.since.isoformat()}" if stats.since else ""
    span = f", shown {_day(stats.first_shown)} to {_day(stats.last_shown)} (UTC)" if stats.first_shown else ""
    return f"Card feedback per rule{since}: {stats.decisions} decisions with status ok{span}"


def _details(rule_id: str, rule: RuleStats) -> list[str]:
    lines = [f"{rule_id}  {rule.title}".rstrip()]
    if rule.accepted_suggestions:
        lines.append("  accepted:   " + "; ".join(f"{k} {n}" for k, n in sorted(rule.accepted_suggestions.items())))
    if rule.override_reasons:
        lines.append("  overridden: " + "; ".join(f"{k} {n}" for k, n in sorted(rule.override_reasons.items())))
    lines.append("  " + _row("week", 8, _COLUMNS))
    lines += ["  " + _row(week, 8, _counts(rule.weeks[week])) for week in sorted(rule.weeks)]
    return lines


def _footnotes(stats: FeedbackStats) -> list[str]:
    notes = [
        (stats.feedback_superseded, "Feedback replaced by a later item on the same card (the latest counts)"),
        (stats.feedback_unmatched, "Feedback on cards not shown in this period (not counted)"),
        (stats.cards_unattributed, "Cards whose decision did not record their rules (before 2026-12-06; not counted)"),
    ]
    shown = [f"{text}: {n}" for n, text in notes if n]
    return ["", *shown] if shown else []


def _counts(tally: Tally) -> tuple[str, ...]:
    return tuple(str(n) for n in (tally.shown, tally.accepted, tally.overridden, tally.no_feedback))


def _row(name: str, width: int, cells: Iterable[str]) -> str:
    """Each cell right-aligned under its column heading."""
    heads = (*_COLUMNS, "overridden %")
    return f"{name:<{width}}" + "".join(f"  {cell:>{len(head)}}" for head, cell in zip(heads, cells, strict=False))


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _day(created_at: str | None) -> str:
    return datetime.fromisoformat(created_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M") if created_at else "-"
