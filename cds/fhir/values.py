"""Observation values as laboratories send them: one reader for value[x], comparators and interpretation flags.

What is read, and what stays unreadable (clinical-rules.md §9.1):

* ``valueQuantity``: the number and unit; a ``comparator`` (< <= >= >) makes the value *censored*: the
  number is a bound and the true value lies on one side of it (below, at-or-below, above, at-or-above).
* ``valueInteger``: a number without a unit; the unit comes from the referenceRange.
* ``valueString``: an optional comparator (< <= > >= ≤ ≥), one number, an optional unit. The number may be
  written with digit groups or a decimal comma, read by these rules:

  - a dot is a decimal point ("0.8"), except in the European form with dot groups and a decimal comma
    ("1.200,5") or with several dot groups ("1.200.000");
  - a space (also no-break and narrow no-break) separates groups of three digits: "1 200" is 1200;
  - a comma followed by one, two or four or more digits is a decimal comma: "0,8" is 0.8, "12,50" 12.5;
  - a comma in a full comma-grouped number with a decimal point ("1,200.5") or several groups ("1,200,000")
    separates thousands;
  - "0,125" (leading zero) is a decimal comma: digit groups never start with 0;
  - "1,200" (one comma, exactly three digits after it) is ambiguous: 1200 with a thousands separator or
    1.2 with a decimal comma. rules/mapping.yaml ``number_format.comma_before_three_digits`` decides:
    ``thousands`` (the default, the US reading of this US rule set) reads 1200, ``decimal`` reads 1.2,
    ``unreadable`` reads neither. The reading is used only if it is plausible for the fact; otherwise the
    value is unreadable, naming both readings: the other reading is never picked because it happens to fit.

  The unit is the text after the number and must be a unit the service knows; without one, the unit of
  the referenceRange is used; without either the value is unreadable. Anything else ("negative", "see
  comment", "BLQ" without a limit, two numbers) is unreadable and said so.
* ``valueCodeableConcept`` where a number is expected, or no value at all (with its dataAbsentReason): unreadable.
* ``interpretation`` (v3-ObservationInterpretation L, LL, H, HH, N, A, AA): kept as a flag, so that a result
  sent with a flag but without a readable value is reported as "flagged but not given".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cds.fhir.element import Element, ElementError
from cds.fhir.terminology import Concept

COMPARATOR_SIDE = {
    "<": "below",
    "<=": "at-or-below",
    ">": "above",
    ">=": "at-or-above",
    "≤": "at-or-below",
    "≥": "at-or-above",
}
SIDE_SIGN = {"below": "<", "at-or-below": "<=", "above": ">", "at-or-above": ">="}
FLAGS = ("L", "LL", "H", "HH", "N", "A", "AA")
FLAG_MEANING = {
    "L": "low",
    "LL": "critically low",
    "H": "high",
    "HH": "critically high",
    "N": "normal",
    "A": "abnormal",
    "AA": "critically abnormal",
}
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_OTHER_VALUES = (
    "valueRange",
    "valueRatio",
    "valueBoolean",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
)
COMMA_RULES = ("thousands", "decimal", "unreadable")  # how "1,200" is read; see the module docstring

_GROUP_SPACE = "[ \u00a0\u202f]"
_COMPARATOR = re.compile(r"\s*(<=|>=|≤|≥|<|>)?\s*")
_NUMBERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern + r"(?![\d.,])"))
    for kind, pattern in (
        ("space-groups", rf"\d{{1,3}}(?:{_GROUP_SPACE}\d{{3}})+(?:[.,]\d+)?"),
        ("dot-groups", r"\d{1,3}(?:\.\d{3})+,\d+|\d{1,3}(?:\.\d{3}){2,}"),
        ("comma-groups", r"[1-9]\d{0,2}(?:,\d{3})+\.\d+|[1-9]\d{0,2}(?:,\d{3}){2,}"),
        ("one-comma-group", r"[1-9]\d{0,2},\d{3}"),
        ("decimal-comma", r"\d+,\d+"),
        ("plain", r"\d+(?:\.\d+)?|\.\d+"),
    )
)


@dataclass(frozen=True)
class ParsedText:
    """A number read from text: its readings (two for an ambiguous "1,200"), side and unit text."""

    readings: tuple[float, ...]  # the reading used first
    side: str | None
    unit: str | None
    note: str = ""  # how an ambiguous number was read
    ambiguous: bool = False  # "1,200": the readings are the two meanings


class TextError(ValueError):
    """Text that is not one number with an optional comparator and unit; the message says why."""


def parse_value_text(text: str, comma_rule: str = "thousands") -> ParsedText:
    """Read "<0.10", "1,200 ng/mL", "> 3000", "0,8"; raises TextError naming what could not be read."""
    head = _COMPARATOR.match(text)
    assert head is not None  # every part of the pattern is optional
    sign, rest = head.group(1), text[head.end() :]
    for kind, pattern in _NUMBERS:
        found = pattern.match(rest)
        if found:
            readings, note = _readings(kind, found.group(0), comma_rule)
            unit = rest[found.end() :].strip() or None
            if unit is not None and re.search(r"\d\s*[.,]?\s*\d|^[.,]", unit) and not _looks_like_unit(unit):
                raise TextError(f"more than one number in {_shown(text)}")
            side = COMPARATOR_SIDE[sign] if sign else None
            return ParsedText(readings, side, unit, note, ambiguous=len(readings) > 1)
    raise TextError(f"{_shown(text)} is not a number")


def _readings(kind: str, number: str, comma_rule: str) -> tuple[tuple[float, ...], str]:
    if kind == "space-groups":
        grouped = re.sub(_GROUP_SPACE, "", number)
        return (float(grouped.replace(",", ".")),), ""
    if kind == "dot-groups":
        return (float(number.replace(".", "").replace(",", ".")),), ""
    if kind == "comma-groups":
        return (float(number.replace(",", "")),), ""
    if kind == "one-comma-group":
        thousands, decimal = float(number.replace(",", "")), float(number.replace(",", "."))
        if comma_rule == "decimal":
            return (decimal, thousands), f"'{number}' read as {decimal:g} (decimal comma), not {thousands:g}"
        note = f"'{number}' read as {thousands:g} (comma as thousands separator), not {decimal:g}"
        return (thousands, decimal), note
    if kind == "decimal-comma":
        return (float(number.replace(",", ".")),), ""
    return (float(number),), ""


def _looks_like_unit(text: str) -> bool:
    """Units such as "10*9/L", "10^9/L", "x10^9/L", "mL/min/1.73m2" contain digits; a second number does not."""
    return bool(re.match(r"^(x\s*)?10[*^]\d+/|^[a-zA-Zµμ%/{\[]", text))


def _shown(text: str) -> str:
    return repr(text.strip()[:40])


# --- what one Observation's value is ------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedValue:
    """A readable value: numbers (first = the reading used), unit, censoring side and the text as sent."""

    readings: tuple[float, ...]
    unit: str | None
    side: str | None
    shown: str
    note: str = ""
    ambiguous: bool = False  # two readings ("1,200"); the first is the one the comma rule chose

    @property
    def value(self) -> float:
        return self.readings[0]


@dataclass(frozen=True)
class Unreadable:
    """A value that is present in some form but cannot be read: what is missing, and any interpretation flag."""

    reason: str
    flag: str | None = None

    def describe(self) -> str:
        if self.flag is not None:
            return f"flagged {self.flag} ({FLAG_MEANING[self.flag]}) but no readable value: {self.reason}"
        return self.reason


def read_value(obs: Element, unit_hint: str | None, comma_rule: str = "thousands") -> ObservedValue | Unreadable:
    """The Observation's value[x] as a number; ``unit_hint`` is the referenceRange unit, for bare numbers.
    The interpretation is read only when the value cannot be (a readable value needs no flag)."""
    found = _value(obs, unit_hint, comma_rule)
    if isinstance(found, Unreadable):
        return Unreadable(found.reason, _flag(obs))
    return found


def _value(obs: Element, unit_hint: str | None, comma_rule: str) -> ObservedValue | Unreadable:
    quantity = obs.quantity("valueQuantity")
    if quantity is not None and quantity.value is not None:
        side = COMPARATOR_SIDE.get(quantity.comparator or "")
        if quantity.comparator and side is None:
            return Unreadable(f"valueQuantity.comparator {_shown(quantity.comparator)} is not < <= >= >")
        shown = f"{quantity.comparator or ''}{quantity.text} {quantity.unit or ''}".strip()
        if not quantity.unit:
            return Unreadable(f"valueQuantity {quantity.text} has no unit")
        return ObservedValue((quantity.value,), quantity.unit, side, shown)
    text = obs.string("valueString")
    if text is not None:
        return _from_text(text, unit_hint, comma_rule)
    integer = obs.get("valueInteger")
    if isinstance(integer, int) and not isinstance(integer, bool):
        if unit_hint is None:
            return Unreadable(f"valueInteger {integer} has no unit and the referenceRange gives none")
        return ObservedValue((float(integer),), unit_hint, None, f"{integer} {unit_hint}")
    return Unreadable(_no_value(obs, quantity is not None))


def _from_text(text: str, unit_hint: str | None, comma_rule: str) -> ObservedValue | Unreadable:
    try:
        parsed = parse_value_text(text, comma_rule)
    except TextError as exc:
        return Unreadable(f"valueString {exc}")
    unit = parsed.unit or unit_hint
    if unit is None:
        return Unreadable(f"valueString {_shown(text)} gives no unit and the referenceRange gives none")
    if parsed.ambiguous and comma_rule == "unreadable":
        readings = " or ".join(f"{v:g}" for v in parsed.readings)
        return Unreadable(f"valueString {_shown(text)} is ambiguous ({readings}; number_format reads neither)")
    return ObservedValue(parsed.readings, unit, parsed.side, text.strip(), parsed.note, parsed.ambiguous)


def _no_value(obs: Element, empty_quantity: bool) -> str:
    concept = obs.concept("valueCodeableConcept")
    if concept is not None:
        return f"a coded answer ({_concept_text(concept)}) where a number is expected"
    other = next((name for name in _OTHER_VALUES if obs.has(name)), None)
    if other is not None:
        return f"{other} where a number is expected"
    absent = obs.concept("dataAbsentReason")
    if absent is not None:
        return f"no value (dataAbsentReason {_concept_text(absent)})"
    if empty_quantity:
        return "valueQuantity without a number"
    return "no value"


def _concept_text(concept: Concept) -> str:
    for coding in concept.codings:
        if coding.display or coding.code:
            return _shown(coding.display or coding.code or "")
    return _shown(concept.text or "no code")


def _flag(obs: Element) -> str | None:
    try:
        concepts = [c.as_concept() for c in obs.children("interpretation")]
    except ElementError as exc:
        obs.warnings.append(f"{exc} (interpretation not used)")
        return None
    for concept in concepts:
        for coding in concept.codings:
            if coding.code in FLAGS and coding.system in (None, INTERPRETATION_SYSTEM):
                return coding.code
    return None
