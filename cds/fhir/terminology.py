"""Named value sets from rules/terminology/*.yaml and matching of FHIR codings against them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from cds.errors import RuleError

_WORD = re.compile(r"[\w-]+")  # the pattern's word characters: a name is bounded by anything else
_PREFIX_KEYS = {"icd10cm_prefix": "icd10cm", "ndc": "ndc"}
_META_KEYS = {"name", "aliases", "status", "source", "strength_mg", "grade", "origin"}


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str | None
    display: str | None


@dataclass(frozen=True)
class Concept:
    """A CodeableConcept reduced to what matching needs."""

    codings: tuple[Coding, ...]
    text: str | None

    @property
    def label(self) -> str:
        names = [self.text, *(c.display for c in self.codings), *(c.code for c in self.codings)]
        return next((n for n in names if n), "unnamed")

    @cached_property
    def names_text(self) -> str:
        """Text, then displays, one per line: one search finds the first of them that names a member."""
        return "\n".join(t for t in (self.text, *(c.display for c in self.codings)) if t)

    @cached_property
    def ascii_words(self) -> tuple[str, frozenset[str]] | None:
        """The names text in lower case and its words, when it is ASCII (None otherwise)."""
        text = self.names_text
        if not text.isascii():
            return None
        lower = text.lower()
        return lower, frozenset(_WORD.findall(lower))


@dataclass(frozen=True)
class Member:
    name: str
    codes: frozenset[tuple[str, str]]
    prefixes: tuple[tuple[str, str], ...]
    words: tuple[str, ...]
    status: str
    source: str
    strength_mg: float | None = None
    grade: int | None = None


@dataclass(frozen=True)
class Match:
    value_set: str
    member: Member
    by: str  # "code" or "name"


@dataclass(frozen=True)
class ValueSet:
    name: str
    description: str
    members: tuple[Member, ...]
    names: re.Pattern[str] | None
    by_code: Mapping[tuple[str, str], Member] = field(default_factory=dict)
    by_prefix: tuple[tuple[str, str, Member], ...] = ()
    by_word: Mapping[str, Member] = field(default_factory=dict)
    words: Words | None = None  # for a quick "no name can match" before the search
    names_uncoded_only: bool = False  # match_names: uncoded - names only for a concept that carries no code

    def match(self, concept: Concept | None) -> Match | None:
        """The member a concept belongs to: by code first, then (if enabled) by a whole-word name."""
        if concept is None:
            return None
        for coding in concept.codings:
            member = self._by_code(coding)
            if member is not None:
                return Match(self.name, member, "code")
        return self._by_name(concept)

    def _by_code(self, coding: Coding) -> Member | None:
        if not coding.system or not coding.code:
            return None
        code = coding.code.strip()
        found = self.by_code.get((coding.system, code))
        if found is not None or not self.by_prefix:
            return found
        return next((m for s, p, m in self.by_prefix if coding.system == s and _starts(code, p)), None)

    def _by_name(self, concept: Concept) -> Match | None:
        if self.names is None:
            return None
        if self.names_uncoded_only and any(c.code for c in concept.codings):
            return None  # a coded result is what its code says ("AST/ALT ratio" is not AST)
        # one search over the lines (the pattern's word boundaries hold at a newline) finds the first text
        # in order that names a member, and in it the leftmost name, as searching each text in turn would
        if self.words is not None and not self.words.may_occur(concept):
            return None
        found = self.names.search(concept.names_text)
        if found is None:
            return None
        return Match(self.name, self.by_word[found.group(0).lower()], "name")


@dataclass(frozen=True)
class Words:
    """The first word of each of a value set's names (all ASCII), for a check before the search.

    A case-insensitive whole-name match in ASCII text starts where a word of the text starts, and the name's
    first word ends where that word ends, so the text's lower-case words contain it; when none does, the
    search cannot succeed. Names that do not start with a word character, and non-ASCII text (with its
    wider case folding), are always searched."""

    firsts: frozenset[str]
    others: tuple[str, ...]  # names that do not start with a word character

    def may_occur(self, concept: Concept) -> bool:
        found = concept.ascii_words
        if found is None:
            return True
        lower, words = found
        return not self.firsts.isdisjoint(words) or any(o in lower for o in self.others)


def _words(names: list[str]) -> Words | None:
    if not all(n.isascii() for n in names):
        return None
    firsts = [_WORD.match(n) for n in names]
    return Words(
        frozenset(m.group(0) for m in firsts if m is not None),
        tuple(n for n, m in zip(names, firsts, strict=True) if m is None),
    )


def _starts(code: str, prefix: str) -> bool:
    return code.replace(".", "").upper().startswith(prefix.replace(".", "").upper())


@dataclass(frozen=True)
class Terminology:
    value_sets: Mapping[str, ValueSet]
    systems: Mapping[str, str]
    _unions: dict[tuple[str, ...], ValueSet] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, name: str) -> ValueSet:
        return self.value_sets[name]

    def union(self, names: tuple[str, ...]) -> ValueSet:
        """Every member of the named sets in one (built once): what it does not match, none of them does."""
        if names not in self._unions:
            self._unions[names] = _union(" | ".join(names), [self.value_sets[n] for n in names])
        return self._unions[names]

    def system(self, alias: str) -> str:
        return self.systems[alias]


def load_terminology(folder: Path) -> Terminology:
    systems = _read(folder / "systems.yaml").get("systems", {})
    sets: dict[str, ValueSet] = {}
    for path in sorted(folder.glob("*.yaml")):
        for name, body in (_read(path).get("value_sets") or {}).items():
            if name in sets:
                raise RuleError(f"{path}: value set {name!r} is defined twice")
            sets[name] = _value_set(path, name, body, systems)
    return Terminology(sets, systems)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read terminology: {exc}") from exc
    if not isinstance(data, dict):
        raise RuleError(f"{path}: expected a mapping")
    return data


def _value_set(path: Path, name: str, body: Any, systems: Mapping[str, str]) -> ValueSet:
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise RuleError(f"{path}: value set {name!r} needs a 'members' list")
    members = tuple(_member(path, name, raw, systems) for raw in body["members"])
    words = sorted({w for m in members for w in m.words}, key=len, reverse=True)
    mode = body.get("match_names")
    if mode not in (None, False, True, "uncoded"):
        raise RuleError(f"{path}: value set {name!r}: match_names is true, false or 'uncoded', not {mode!r}")
    pattern = _names_pattern(words) if mode else None
    by_code = {code: m for m in reversed(members) for code in m.codes}  # first listed member wins
    by_prefix = tuple((s, p, m) for m in members for s, p in m.prefixes)
    by_word = {w: m for m in reversed(members) for w in m.words}
    description = str(body.get("description", ""))
    return ValueSet(name, description, members, pattern, by_code, by_prefix, by_word, _words(words), mode == "uncoded")


def _union(name: str, sets: list[ValueSet]) -> ValueSet:
    members = tuple(m for v in sets for m in v.members)
    named = [m for v in sets if v.names is not None for m in v.members]
    words = sorted({w for m in named for w in m.words}, key=len, reverse=True)
    return ValueSet(
        name,
        "union, for pre-filtering",
        members,
        _names_pattern(words),
        {code: m for m in reversed(members) for code in m.codes},
        tuple(p for v in sets for p in v.by_prefix),
        {w: m for m in reversed(named) for w in m.words},
        _words(words),
    )


def _names_pattern(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.IGNORECASE)


def _member(path: Path, set_name: str, raw: Any, systems: Mapping[str, str]) -> Member:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise RuleError(f"{path}: every member of {set_name!r} needs a 'name'")
    codes: set[tuple[str, str]] = set()
    prefixes: list[tuple[str, str]] = []
    for key, value in raw.items():
        if key in _META_KEYS:
            continue
        system = systems.get(_PREFIX_KEYS.get(key) or str(key))
        if system is None:
            raise RuleError(f"{path}: {set_name}/{raw['name']}: unknown code system {key!r}")
        pairs = [(system, code) for code in _strings(value)]
        if key in _PREFIX_KEYS:
            prefixes.extend(pairs)
        else:
            codes.update(pairs)
    return Member(
        name=raw["name"],
        codes=frozenset(codes),
        prefixes=tuple(prefixes),
        words=tuple(w.lower() for w in (raw["name"], *raw.get("aliases", []))),
        status=str(raw.get("status", "U")),
        source=str(raw.get("source", "")),
        strength_mg=float(raw["strength_mg"]) if "strength_mg" in raw else None,
        grade=int(raw["grade"]) if "grade" in raw else None,
    )


def _strings(value: Any) -> Iterable[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
