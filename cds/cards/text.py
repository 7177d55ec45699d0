"""Card text for clinicians: short citations, readable dates and units, the key facts, and the line budget.

Everything reviewers need besides (the full fact table, how the dose was composed, evidence notes, rule ids)
is on the explanation page behind the card's link, not here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cds.dates import day, day_and_time
from cds.engine.model import Evidence

MAX_DETAIL_LINES = 15  # issue 14: a card is read in seconds; the rest is behind the link
_REFERENCE_FILE = re.compile(r"\b(clinical-rules|pk|cds-hooks)\.md\b")
_SOURCE_CODE = re.compile(r"\s*\[S\d+\]|\s*\(V\s*\)")
_CITATION_MAX = 80
MAX_CITATIONS = 4
_DANGLING = re.compile(r"([\s,;:/-]|\s(and|or|in))+$")  # what cutting a section number off leaves
# UCUM canonical units as people read them
_UNITS = {"10*9/L": "x10^9/L", "a": "years", "d": "days", "m2": "m2", "1": "", "{ratio}": ""}
_PLURAL_ONE = {"years": "year", "days": "day"}


@dataclass(frozen=True)
class KeyFact:
    """One line of the card's key facts: "Creatinine clearance: 36.6 mL/min (23 Nov 2026 08:30)"."""

    label: str
    value: str  # already safe for markdown (escaped by the caller when it came from the request)
    unit: str | None = None
    when: datetime | None = None
    reported: str = ""  # the laboratory's own value and unit when the unit was converted (already safe)
    computed: str = ""  # how a computed value was made (already safe)

    def line(self, zone: ZoneInfo) -> str:
        shown = display_unit(self.unit)
        if shown in _PLURAL_ONE and self.value == "1":
            shown = _PLURAL_ONE[shown]
        text = f"{self.label}: {self.value}" + (f" {shown}" if shown else "")
        notes = [self.computed] if self.computed else []
        notes += [f"reported as {self.reported}"] if self.reported else []
        notes += [readable_time(self.when, zone)] if self.when else []
        return text + (f" ({'; '.join(notes)})" if notes else "")


def display_unit(unit: str | None) -> str:
    if not unit:
        return ""
    return _UNITS.get(unit, unit)


def readable_time(when: datetime, zone: ZoneInfo) -> str:
    """ "25 Nov 2026 08:00" in the display zone; a date without a time of day (midnight UTC) as "25 Nov 2026"."""
    local = when.astimezone(zone) if when.tzinfo else when
    if when.tzinfo is not None and (when.hour, when.minute, when.second) == (0, 0, 0) and not when.utcoffset():
        return day(when)
    text = day_and_time(local)
    return text if zone.key == "UTC" else f"{text} {local.tzname()}"


def short_citations(evidence: Iterable[Evidence], limit: int = MAX_CITATIONS) -> list[str]:
    """Citation texts shortened for a card, without section signs, reference-file names or evidence notes;
    a citation that is only this project's reference ("clinical-rules.md §9.1 ...") reads "Local policy".
    Each source once, at most ``limit`` (all of them are on the explanation page)."""
    found: list[str] = []
    for item in evidence:
        for part in short_citation(item.citation).split("; "):
            if part and part not in found:
                found.append(part)
    return found[:limit]


def short_citation(citation: str) -> str:
    """ "Gleevec (imatinib) US prescribing information, Renal Impairment (§2.12)" -> "Gleevec US prescribing
    information, Renal Impairment": no parentheses, section numbers or source codes; this project's reference
    files read "Local policy"."""
    parts = []
    for part in _top_level(citation).split("; "):
        if _REFERENCE_FILE.search(part) or part.lower().startswith("local policy"):
            parts.append("Local policy")
            continue
        part = _SOURCE_CODE.sub("", part.split("§", 1)[0])
        part = re.sub(r"\s+", " ", _DANGLING.sub("", part)).strip()
        if part:
            parts.append(part)
    text = "; ".join(dict.fromkeys(parts))
    if len(text) > _CITATION_MAX:
        text = text[: _CITATION_MAX - 1].rsplit(" ", 1)[0].rstrip(",;: ") + "…"
    return text


def _top_level(text: str) -> str:
    """``text`` without its parenthesised asides (nested ones too)."""
    kept, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


_REASONED = re.compile(r"(?P<head>[^()]+?) \((?P<why>[^()]+)\): (?P<rest>.+)")


def merge_reasons(lines: Sequence[str]) -> list[str]:
    """Findings that say the same thing for different reasons are one line: "Imatinib level recommended (CYP3A4
    interacting drug): trough ..." and "Imatinib level recommended (renal impairment): trough ..." read
    "Imatinib level recommended (CYP3A4 interacting drug; renal impairment): trough ...", at the place of the
    first, with the longest of their instructions. Lines of any other shape are kept as they are.

    >>> merge_reasons(["A (x): do it", "B", "A (y): do it now"])
    ['A (x; y): do it now', 'B']
    """
    groups: dict[str, list[re.Match[str]]] = {}
    for line in lines:
        found = _REASONED.fullmatch(line)
        if found:
            groups.setdefault(found["head"], []).append(found)
    merged: list[str] = []
    for line in lines:
        found = _REASONED.fullmatch(line)
        if found is None:
            merged.append(line)
            continue
        same = groups.pop(found["head"], None)
        if same is not None:
            reasons = "; ".join(dict.fromkeys(m["why"] for m in same))
            rest = max((m["rest"] for m in same), key=len)
            merged.append(f"{found['head']} ({reasons}): {rest}")
    return merged


def reflow(markdown: str) -> list[str]:
    """Template text with each paragraph on one line (a hard-wrapped paragraph is one paragraph in markdown);
    list items and headings keep their own lines, paragraphs stay separated by a blank line."""
    lines: list[str] = []
    for block in re.split(r"\n\s*\n", markdown.strip()):
        joined: list[str] = []
        for raw in block.splitlines():
            line = raw.strip()
            if not line:
                continue
            if joined and not re.match(r"([-*+]|\d+[.)]|#+)\s", line):
                joined[-1] += " " + line
            else:
                joined.append(line)
        if joined:
            if lines:
                lines.append("")
            lines.extend(joined)
    return lines


@dataclass(frozen=True)
class Section:
    """A block of the detail; ``keep`` lines stay when the budget is short, the rest may be dropped (from the
    end of the block), blocks of lower ``drop_rank`` first."""

    lines: Sequence[str]
    keep: int
    drop_rank: int = 99


def fit(sections: Sequence[Section], budget: int = MAX_DETAIL_LINES) -> str:
    """The sections, blank-line separated, within ``budget`` lines (a last resort cuts the end)."""
    kept = [list(s.lines) for s in sections]

    def total() -> int:
        blocks = [k for k in kept if k]
        return sum(len(k) for k in blocks) + max(len(blocks) - 1, 0)

    for index in sorted(range(len(sections)), key=lambda i: (sections[i].drop_rank, -i)):
        while total() > budget and len(kept[index]) > sections[index].keep:
            kept[index].pop()
            if kept[index] and (not kept[index][-1].strip() or kept[index][-1].endswith("**")):
                kept[index].pop()  # no dangling blank line or heading
    lines = [line for block in (k for k in kept if k) for line in [*block, ""]][:-1]
    if len(lines) > budget:
        lines = [*lines[: budget - 1], "…"]
    return "\n".join(lines)
