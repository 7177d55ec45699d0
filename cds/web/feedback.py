"""The feedback figures of the rule pages (``/rules`` and ``/rules/{rule_id}``): statistics over the latest audit
entries, computed at most once per cache period, and each rule's weekly trend as a PNG.

The pages are public (no token), so they show counts only: override reasons by the code the card offered, never
a clinician's free-text comment, and nothing about patients or clients.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cds.audit.stats import NO_REASON, NOT_OFFERED, FatigueRule, FeedbackStats, RuleStats, Tally, collect_stats
from cds.cards.build import OVERRIDE_REASONS

if TYPE_CHECKING:
    from cds.audit.store import AuditStore

PLOT_WEEKS = 26  # the trend shows at most the latest half year; the table below it lists every week
REASON_DISPLAY = {
    **dict(OVERRIDE_REASONS),
    NOT_OFFERED: "A reason the card did not offer",
    NO_REASON: "No reason given",
}


class FeedbackFigures:
    """Statistics over the latest ``entries`` audit entries, reused for ``ttl_s`` seconds. One computation at a
    time: a request arriving meanwhile waits for it rather than starting another over the same entries."""

    def __init__(
        self,
        store: AuditStore,
        fatigue: FatigueRule,
        *,
        entries: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.fatigue = fatigue
        self.entries = entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stats: FeedbackStats | None = None
        self._computed_at = 0.0
        self._plots: dict[str, bytes | None] = {}

    def current(self) -> FeedbackStats:
        with self._lock:
            now = self._clock()
            if self._stats is None or now - self._computed_at >= self.ttl_s:
                first = max(1, self.store.count() - self.entries + 1)
                self._stats = collect_stats(self.store, self.fatigue, first_seq=first)
                self._computed_at = now
                self._plots = {}
            return self._stats

    def trend_png(self, rule_id: str) -> bytes | None:
        """The rule's weekly trend over the current figures; None when none of its cards was shown."""
        stats = self.current()
        plots = self._plots  # the figures' own plots: a recomputation replaces the dict
        if rule_id not in plots:
            rule = stats.rules.get(rule_id)
            plots[rule_id] = draw_trend(rule_id, rule, self.fatigue) if rule and rule.total.shown else None
        return plots[rule_id]


@dataclass(frozen=True)
class WeekRow:
    week: str
    tally: Tally


def week_rows(rule: RuleStats, limit: int | None = None) -> list[WeekRow]:
    """Every ISO week from the rule's first to its last week with a card shown, quiet weeks as zeros; with
    ``limit``, only the latest ``limit`` weeks."""
    if not rule.weeks:
        return []
    first, last = (_monday(w) for w in (min(rule.weeks), max(rule.weeks)))
    if limit is not None:
        first = max(first, last - timedelta(weeks=limit - 1))
    rows, day = [], first
    while day <= last:
        year, week, _ = day.isocalendar()
        name = f"{year}-W{week:02d}"
        rows.append(WeekRow(name, rule.weeks.get(name, Tally())))
        day += timedelta(weeks=1)
    return rows


def _monday(iso_week: str) -> datetime:
    year, week = iso_week.split("-W")
    return datetime.fromisocalendar(int(year), int(week), 1)


def draw_trend(rule_id: str, rule: RuleStats, fatigue: FatigueRule) -> bytes:
    """Stacked weekly bars (accepted, overridden, no feedback) and the week's override rate against the
    fatigue threshold."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from cds.web.plots import DRAW_LOCK

    rows = week_rows(rule, PLOT_WEEKS)
    x = list(range(len(rows)))
    accepted = [r.tally.accepted for r in rows]
    overridden = [r.tally.overridden for r in rows]
    silent = [r.tally.no_feedback for r in rows]
    rates = [r.tally.overridden / r.tally.shown * 100 if r.tally.shown else float("nan") for r in rows]
    with DRAW_LOCK:
        fig = Figure(figsize=(7.5, 3.4), dpi=100)
        ax = fig.add_subplot()
        ax.bar(x, accepted, 0.7, color="#1a7f37", label="accepted")
        ax.bar(x, overridden, 0.7, bottom=accepted, color="#cf222e", label="overridden")
        below = [a + o for a, o in zip(accepted, overridden, strict=True)]
        ax.bar(x, silent, 0.7, bottom=below, color="#afb8c1", label="no feedback")
        pad = max(0.0, (8 - len(x)) / 2)  # a few weeks stay narrow bars, centred
        ax.set_xlim(-0.5 - pad, len(x) - 0.5 + pad)
        ax.set_ylabel("cards shown")
        ax.set_xticks(x, [r.week.replace("-W", "\nW") for r in rows], fontsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        rate_axis = ax.twinx()
        rate_axis.plot(x, rates, color="#0550ae", marker="o", markersize=3, linewidth=1.2, label="override rate")
        rate_axis.axhline(fatigue.threshold * 100, color="#0550ae", linestyle=":", linewidth=1, label="threshold")
        rate_axis.set_ylim(0, 105)
        rate_axis.set_ylabel("overridden (%)")
        ax.set_title(f"{rule_id}: cards shown per ISO week (UTC)", fontsize=10)
        handles = [h for a in (ax, rate_axis) for h in a.get_legend_handles_labels()[0]]
        fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0.0, 0.1, 1.0, 1.0))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    return buffer.getvalue()


def trend_alt(rule_id: str, rule: RuleStats) -> str:
    rows = week_rows(rule, PLOT_WEEKS)
    return (
        f"Weekly trend of {rule_id} over {len(rows)} ISO weeks from {rows[0].week} to {rows[-1].week}: "
        f"{rule.total.shown} cards shown, {rule.total.accepted} accepted, {rule.total.overridden} overridden, "
        f"{rule.total.no_feedback} without feedback; bars per week, line the week's override rate."
    )
