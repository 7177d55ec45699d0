"""Closest names by edit distance, for "did you mean ...?" in diagnostics."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of one character each cost 1."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def closest(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """Up to ``limit`` candidates nearest to ``name``, within a quarter of its length (at least 2 edits)."""
    allowed = max(2, len(name) // 4)
    scored = sorted((edit_distance(name, c), c) for c in set(candidates))
    best = [(d, c) for d, c in scored if d <= allowed]
    return [c for d, c in best if d == best[0][0]][:limit] if best else []


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """ "; did you mean `x`?" (or "`x` or `y`"), or "" when nothing is close."""
    found = closest(name, candidates)
    return f"; did you mean {' or '.join(f'`{c}`' for c in found)}?" if found else ""
