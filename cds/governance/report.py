"""The replay report: counts as decisions stream past, the changed ones spooled to a temporary file.

Memory is flat in the number of decisions: the counters are per rule, and changed decisions wait on disk
until the report is written (JSON for tools, text for a terminal, HTML for a committee).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cds import __version__
from cds.engine.ruleset import RuleSet
from cds.governance.advice import Advice, rules_behind
from cds.governance.replay import Replayed

MAX_PROBLEMS = 20  # decisions that could not be recomputed, listed by example (all are counted)
HTML_PER_RULE = 100  # changed decisions shown under one rule on the HTML page (all are in the JSON)


@dataclass
class ReplayReport:
    candidate: RuleSet
    decisions: int = 0
    changed: int = 0
    not_replayable: int = 0
    fired: dict[str, list[int]] = field(default_factory=dict)  # rule -> [before, after]
    made_by: Counter[str] = field(default_factory=Counter)  # imatinib-cds versions that made the decisions
    problems: list[dict[str, Any]] = field(default_factory=list)
    _spool: TextIO = field(default_factory=lambda: tempfile.TemporaryFile("w+", encoding="utf-8"))

    def add(self, replayed: Replayed) -> None:
        self.decisions += 1
        if replayed.after is None:
            self.not_replayable += 1
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(
                    {"seq": replayed.seq, "hookInstance": replayed.hook_instance, "problem": replayed.problem}
                )
            return
        self.made_by[replayed.made_by] += 1
        for side, advice in enumerate((replayed.before, replayed.after)):
            for rule in set(advice.fired):
                self.fired.setdefault(rule, [0, 0])[side] += 1
        differs = replayed.differs
        if differs:
            self.changed += 1
            self._spool.write(json.dumps(_change(replayed, differs), ensure_ascii=False) + "\n")

    def summary(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "changed": self.changed,
            "not_replayable": self.not_replayable,
            "candidate": {"version": self.candidate.version, "digest": self.candidate.digest},
            # replayed with this version's code: decisions another version made may differ for that reason too
            "replayed_by": __version__,
            "made_by": dict(self.made_by),
            "by_rule": {
                rule: {"fired_before": before, "fired_after": after}
                for rule, (before, after) in sorted(self.fired.items())
            },
            "problems": self.problems,
        }

    def changes(self) -> Iterator[dict[str, Any]]:
        """The changed decisions, oldest first, each with its cards before and after."""
        self._spool.flush()
        self._spool.seek(0)
        for line in self._spool:
            yield json.loads(line)

    def write_json(self, out: TextIO) -> None:
        """The summary and every change, written as they are read back (no list of changes in memory)."""
        head = json.dumps(self.summary(), ensure_ascii=False, indent=2)
        out.write(head[:-2] + ',\n  "changes": [')
        for i, change in enumerate(self.changes()):
            brief = {k: v for k, v in change.items() if k not in ("cards_before", "cards_after")}
            out.write(("," if i else "") + "\n    " + json.dumps(brief, ensure_ascii=False))
        out.write("\n  ]\n}\n")

    def write_text(self, out: TextIO, examples: int = 10) -> None:
        out.write(
            f"{self.decisions} decisions replayed with the rules in {self.candidate.root} "
            f"(digest {self.candidate.digest[:12]}): {self.changed} would change"
            + (f", {self.not_replayable} could not be recomputed" if self.not_replayable else "")
            + "\n"
        )
        other = {v or "unknown": n for v, n in sorted(self.made_by.items()) if v != __version__}
        if other:
            made = ", ".join(f"{n} by {v}" for v, n in other.items())
            out.write(f"note: decisions made by another imatinib-cds version ({made}) may change for that reason too\n")
        moved = {r: c for r, c in sorted(self.fired.items()) if c[0] != c[1]}
        if moved:
            out.write("\nrules firing differently    before  after\n")
            for rule, (before, after) in moved.items():
                out.write(f"  {rule:24} {before:8} {after:6}\n")
        for i, change in enumerate(self.changes()):
            if i == examples:
                out.write(f"\n... {self.changed - examples} more (--json or --html for all)\n")
                break
            out.write(
                f"\n{change['hookInstance']} (entry {change['seq']}, {change['received']}): "
                f"{', '.join(change['differs'])} differ; rules {', '.join(change['rules'])}\n"
                f"  before: {_line(change['before'])}\n  after:  {_line(change['after'])}\n"
            )
        for problem in self.problems:
            out.write(f"\nnot recomputed: entry {problem['seq']} {problem['hookInstance']}: {problem['problem']}\n")

    def write_html(self, path: Path) -> None:
        from cds.web.pages import render

        groups: dict[str, list[dict[str, Any]]] = {rule: [] for rule in sorted(self.fired)}
        counts: Counter[str] = Counter()
        for change in self.changes():
            for rule in change["rules"]:
                counts[rule] += 1
                if counts[rule] <= HTML_PER_RULE:
                    groups.setdefault(rule, []).append(change)
        page = render(
            "replay.html",
            report=self.summary(),
            groups={rule: items for rule, items in groups.items() if items},
            counts=counts,
            per_rule=HTML_PER_RULE,
            root=self.candidate.root,
            titles={r.id: r.title for f in self.candidate.files for r in f.rules},
            show_nav=False,
        )
        path.write_text(page, encoding="utf-8")

    def close(self) -> None:
        self._spool.close()


def _change(replayed: Replayed, differs: list[str]) -> dict[str, Any]:
    assert replayed.after is not None
    return {
        "seq": replayed.seq,
        "hookInstance": replayed.hook_instance,
        "received": replayed.received,
        "differs": differs,
        "rules": rules_behind(replayed.before, replayed.after),
        "before": replayed.before.brief(),
        "after": replayed.after.brief(),
        "cards_before": _cards(replayed.before),
        "cards_after": _cards(replayed.after),
    }


def _cards(advice: Advice) -> list[Mapping[str, Any]]:
    return [
        {
            "indicator": c.get("indicator"),
            "summary": c.get("summary"),
            "detail": c.get("detail", ""),
            "suggestions": [s.get("label") for s in c.get("suggestions") or ()],
        }
        for c in advice.cards
    ]


def _line(brief: Mapping[str, Any]) -> str:
    dose = f"{brief['action']} {brief['daily_mg']:g} mg/day" if brief.get("daily_mg") else str(brief["action"])
    return f"{dose}; " + " | ".join(brief["summaries"] or ["no cards"])
