"""Typed reads of single FHIR elements, each checked against its R4 datatype where it is read.

An ``Element`` wraps one JSON object of a resource (or the R4B model of a resource already validated) with
its JSON path, so that an error names the element (``prefetch.labs.entry[3].resource.valueQuantity.value``).
Reading only the elements the facts need costs a fraction of validating whole resources with the R4B models.
Lenient like ``parse.validate_resource``: a single value for an array and a date-time without a zone are
accepted with the same warnings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TypeGuard

from pydantic import BaseModel

from cds.fhir.terminology import Coding, Concept

# FHIR R4 lexical forms (https://hl7.org/fhir/R4/datatypes.html); partial dates stay strings as in the models.
_DATE_TIME = re.compile(
    r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?)?)?)?",
    re.ASCII,
)
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?", re.ASCII)
_DECIMAL = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?", re.ASCII)
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_STRING = re.compile(r"[ \r\n\t\S]")
_STRING_START = frozenset(" \r\n\t").union(chr(c) for c in range(33, 127))  # a first character _STRING accepts
_UCUM = "http://unitsofmeasure.org"
_NO_ZONE = "a date-time without a time zone, read as UTC (accepted)"
_NOT_ARRAY = "a single value instead of an array (accepted)"
_NUMBER_TEXT = "a number given as a string (accepted)"


class ElementError(ValueError):
    """An element read by the mapper is not of its FHIR datatype; ``path`` is its JSON path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


DateValue = datetime | date | str  # what the R4B models hold for date and dateTime elements


@dataclass(frozen=True)
class Quantity:
    value: float | None
    unit: str | None  # the UCUM code when the quantity says it is UCUM, else the human unit string
    comparator: str | None
    given: object  # the value as given

    @property
    def text(self) -> str:
        """The value as the R4B model prints it (for warnings)."""
        return str(Decimal(str(self.given)) if isinstance(self.given, float) else self.given)


@dataclass(frozen=True)
class Period:
    start: DateValue | None
    end: DateValue | None


class Fields:
    """A validated R4B model read like its JSON (the models' field names are the R4 element names)."""

    __slots__ = ("model",)

    def __init__(self, model: BaseModel) -> None:
        self.model = model

    def get(self, name: str) -> Any:
        return getattr(self.model, name, None)


class Element:
    """One JSON object of a resource (or a ``Fields`` view of a validated model), read element by element.

    The JSON path is built only when a warning or an error needs it."""

    __slots__ = ("_data", "_parent", "_step", "warnings")

    def __init__(self, data: Any, path: str | Element, warnings: list[str], step: str | tuple[str, int] = "") -> None:
        self._data = data  # a dict or a Fields
        self._parent = path
        self._step = step
        self.warnings = warnings

    @property
    def path(self) -> str:
        parent = self._parent if isinstance(self._parent, str) else self._parent.path
        step = self._step
        if isinstance(step, tuple):
            return f"{parent}.{step[0]}[{step[1]}]"
        return f"{parent}.{step}" if step else parent

    def get(self, name: str) -> Any:
        return self._data.get(name)

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def _error(self, name: str, expected: str, value: object) -> ElementError:
        return ElementError(f"{self.path}.{name}", f"expected {expected}, got {_kind(value)}")

    # --- primitives -------------------------------------------------------------------------------------

    def string(self, name: str) -> str | None:
        value = self._data.get(name)
        if value is None or _is_string(value):
            return value
        raise self._error(name, "a non-empty string", value)

    def code(self, name: str) -> str | None:
        value = self._data.get(name)
        if value is None or _is_code(value):
            return value
        raise self._error(name, "a code (no leading, trailing or repeated whitespace)", value)

    def uri(self, name: str) -> str | None:
        value = self._data.get(name)
        if value is None or isinstance(value, str):
            return value
        raise self._error(name, "a URI string", value)

    def boolean(self, name: str) -> bool | None:
        value = self._data.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise self._error(name, "true or false", value)

    def decimal(self, name: str) -> float | None:
        given = self._data.get(name)
        if given is None:
            return None
        value = given
        if isinstance(given, str) and _DECIMAL.fullmatch(given):
            self.warnings.append(f"{self.path}.{name}: {_NUMBER_TEXT}")  # the R4B models accept it too
            value = Decimal(given)
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise self._error(name, "a number", given)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self._error(name, "a finite number", given)
        return number

    def integer(self, name: str, minimum: int = -(2**31)) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**31:
            raise self._error(name, f"an integer from {minimum} to {2**31 - 1}", value)
        return value

    def date_time(self, name: str) -> DateValue | None:
        """An aware datetime, a date, or a partial date kept as text (what the R4B models return)."""
        value = self._data.get(name)
        if value is None or isinstance(value, datetime | date):
            return value  # a validated model's value
        if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
            raise self._error(name, "a FHIR date or dateTime", value)
        return self._parse_date_time(name, value)

    def _parse_date_time(self, name: str, value: str) -> DateValue:
        if len(value) < 10 or value[17:19] == "60":
            return value  # partial date or leap second: the models keep the text
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            when = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self._error(name, "a valid date", value) from exc
        if when.tzinfo is None:
            self.warnings.append(f"{self.path}.{name}: {_NO_ZONE}")
            when = when.replace(tzinfo=UTC)
        return when

    def times(self, name: str) -> list[time | str]:
        """FHIR ``time`` values (leap seconds kept as text, as the models do); a zone is dropped."""
        out: list[time | str] = []
        for i, value in enumerate(self._array(name)):
            if isinstance(value, time):
                out.append(value.replace(tzinfo=None))
            elif isinstance(value, str) and _TIME.fullmatch(value):
                out.append(value if value[6:8] == "60" else time.fromisoformat(value))
            else:
                raise ElementError(f"{self.path}.{name}[{i}]", f"expected a FHIR time hh:mm:ss, got {_kind(value)}")
        return out

    # --- complex elements -------------------------------------------------------------------------------

    def child(self, name: str) -> Element | None:
        value = self._data.get(name)
        if value is None:
            return None
        found = _object(value)
        if found is None:
            raise self._error(name, "an object", value)
        return Element(found, self, self.warnings, name)

    def children(self, name: str) -> list[Element]:
        return [self._item(name, i, value) for i, value in enumerate(self._array(name))]

    def _item(self, name: str, i: int, value: object) -> Element:
        found = _object(value)
        if found is None:
            raise ElementError(f"{self.path}.{name}[{i}]", f"expected an object, got {_kind(value)}")
        return Element(found, self, self.warnings, (name, i))

    def first(self, name: str) -> Element | None:
        found = self.children(name)
        return found[0] if found else None

    def _array(self, name: str) -> list[Any]:
        value = self._data.get(name)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.warnings.append(f"{self.path}.{name}: {_NOT_ARRAY}")  # a model always holds a list
        return [value]

    def concept(self, name: str) -> Concept | None:
        """A CodeableConcept reduced for terminology matching."""
        found = self.child(name)
        return None if found is None else found.as_concept()

    def as_concept(self) -> Concept:
        codings = []
        for i, value in enumerate(self._array("coding")):
            coding = _coding(value)
            if coding is None:  # read it element by element for the error
                found = self._item("coding", i, value)
                coding = Coding(found.uri("system"), found.code("code"), found.string("display"))
            codings.append(coding)
        return Concept(tuple(codings), self.string("text"))

    def quantity(self, name: str) -> Quantity | None:
        value = self._data.get(name)
        found = _quantity(value) if value is not None else None
        if found is not None or value is None:
            return found
        element = self.child(name)  # read it element by element for the error
        assert element is not None
        number, code, unit = element.decimal("value"), element.code("code"), element.string("unit")
        system = element.uri("system")
        unit = code if code and system in (None, _UCUM) else unit
        return Quantity(number, unit, element.code("comparator"), element.get("value"))

    def period(self, name: str) -> Period | None:
        found = self.child(name)
        return None if found is None else Period(found.date_time("start"), found.date_time("end"))


def first_code(concept: Concept | None) -> str | None:
    """The first coding's code (how statuses and severities given as CodeableConcepts are read)."""
    codings = concept.codings if concept else ()
    return codings[0].code if codings and codings[0].code else None


def _is_string(value: object) -> TypeGuard[str]:
    """A FHIR string: some character other than the exotic whitespace the R4B pattern refuses."""
    return isinstance(value, str) and (bool(value) and value[0] in _STRING_START or bool(_STRING.search(value)))


def _is_code(value: object) -> TypeGuard[str]:
    # printable and without spaces means no whitespace at all: the common case, without the regex
    return isinstance(value, str) and (
        bool(value) and value.isprintable() and " " not in value or bool(_CODE.fullmatch(value))
    )


def _coding(value: object) -> Coding | None:
    """A Coding whose elements are all of their datatypes, else None."""
    data = _object(value)
    if data is None:
        return None
    system, code, display = data.get("system"), data.get("code"), data.get("display")
    if system is not None and not isinstance(system, str) or code is not None and not _is_code(code):
        return None
    return Coding(system, code, display) if display is None or _is_string(display) else None


def _quantity(value: object) -> Quantity | None:
    """A Quantity whose elements are all of their datatypes (a plain JSON number value), else None."""
    if not isinstance(value, dict):
        return None
    number, code, unit, system = value.get("value"), value.get("code"), value.get("unit"), value.get("system")
    comparator = value.get("comparator")
    if not (number is None or type(number) is int and -(2**53) < number < 2**53 or type(number) is float):
        return None
    if number is not None and not math.isfinite(number):
        return None
    if not (code is None or _is_code(code)) or not (comparator is None or _is_code(comparator)):
        return None
    if not (unit is None or _is_string(unit)) or not (system is None or isinstance(system, str)):
        return None
    given = None if number is None else float(number)
    return Quantity(given, code if code and system in (None, _UCUM) else unit, comparator, number)


def _object(value: object) -> dict[str, Any] | Fields | None:
    if isinstance(value, dict):
        return value
    return Fields(value) if isinstance(value, BaseModel) else None


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return type(value).__name__
