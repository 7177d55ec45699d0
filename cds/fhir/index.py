"""The request's resources by type, restricted to the patient; read element by element, or validated with R4B."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from cds.errors import InvalidInput
from cds.fhir import parse
from cds.fhir.element import Element, ElementError
from cds.fhir.terminology import Coding, Concept
from cds.fhir.types import HookRequest, Source

R = TypeVar("R")
_SUBJECT_FIELDS = ("subject", "patient")


class ResourceIndex:
    def __init__(self, request: HookRequest, warnings: list[str]) -> None:
        self.request = request
        self.warnings = warnings
        self._by_type: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._models: dict[tuple[str, str], Any] = {}
        self._concepts: dict[tuple[str, str], list[tuple[tuple[str, str], Concept]]] = {}
        self._read: dict[tuple[Callable[[Element], Any], tuple[str, str]], Any] = {}
        for key, raw in request.resources.items():
            if self._belongs(key, raw):
                self._by_type[key[0]].append(key)

    def _belongs(self, key: tuple[str, str], raw: Mapping[str, Any]) -> bool:
        """Drop resources of another patient (cms-price-check's verifyPatient)."""
        pid = self.request.patient_id
        if pid is None:
            return True
        if key[0] == "Patient":
            return self._same(key, key[1] == pid)
        for name in _SUBJECT_FIELDS:
            ref = raw.get(name)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                target = ref["reference"].rstrip("/")
                return self._same(key, target.endswith(f"Patient/{pid}") or target == pid)
        return True

    def _same(self, key: tuple[str, str], same: bool) -> bool:
        if not same:
            self.warnings.append(f"{self.request.paths[key]}: belongs to another patient (ignored)")
        return same

    def coded(self, resource_type: str, element: str = "code") -> list[tuple[tuple[str, str], Concept]]:
        """Each resource's raw CodeableConcept ``element``, read once (cheap pre-selection before validating)."""
        cache_key = (resource_type, element)
        if cache_key not in self._concepts:
            pairs = ((key, raw_concept(self.raw(key).get(element))) for key in self.keys(resource_type))
            self._concepts[cache_key] = [(key, found) for key, found in pairs if found is not None]
        return self._concepts[cache_key]

    def keys(self, resource_type: str) -> list[tuple[str, str]]:
        return self._by_type.get(resource_type, [])

    def raw(self, key: tuple[str, str]) -> Mapping[str, Any]:
        return self.request.resources[key]

    def read(self, key: tuple[str, str], reader: Callable[[Element], R]) -> R | None:
        """What ``reader`` takes from the resource (once per request), or None with a warning naming the
        first element that is not of its FHIR datatype."""
        cache_key = (reader, key)
        if cache_key not in self._read:
            try:
                self._read[cache_key] = reader(Element(self.raw(key), self.request.paths[key], self.warnings))
            except ElementError as exc:
                self.warnings.append(f"{exc} (resource not used)")
                self._read[cache_key] = None
        found: R | None = self._read[cache_key]
        return found

    def model(self, key: tuple[str, str], kind: type[R]) -> R | None:
        """The validated model, or None (with a warning) when R4 cannot be read from it."""
        if key not in self._models:
            self._models[key] = self._validate(key)
        found = self._models[key]
        return found if isinstance(found, kind) else None

    def models(self, kind: type[R]) -> Iterator[tuple[tuple[str, str], R]]:
        for key in self.keys(kind.__name__):
            found = self.model(key, kind)
            if found is not None:
                yield key, found

    def required(self, key: tuple[str, str], kind: type[R]) -> R:
        """Like model(), but a resource the answer depends on must be readable."""
        found = self._models.get(key)
        if found is not None:  # validated before (e.g. as a comedication): do not validate, or warn, twice
            if not isinstance(found, kind):
                raise InvalidInput(self.request.paths[key], f"expected a {kind.__name__}")
            return found
        try:
            found = parse.validate_resource(self.raw(key), self.request.paths[key], self.warnings)
        except parse.ResourceError as exc:
            raise InvalidInput(exc.path, exc.message) from exc
        self._models[key] = found
        if not isinstance(found, kind):
            raise InvalidInput(self.request.paths[key], f"expected a {kind.__name__}")
        return found

    def _validate(self, key: tuple[str, str]) -> object:
        try:
            return parse.validate_resource(self.raw(key), self.request.paths[key], self.warnings)
        except parse.ResourceError as exc:
            self.warnings.append(f"{exc} (resource not used)")
            return None


def concept(value: Any) -> Concept | None:
    """A CodeableConcept model reduced for terminology matching."""
    if value is None:
        return None
    return Concept(tuple(Coding(c.system, c.code, c.display) for c in value.coding or ()), value.text)


def raw_concept(value: object) -> Concept | None:
    """The same from unvalidated JSON (used to pre-select resources before validating them)."""
    if not isinstance(value, Mapping):
        return None
    codings = value.get("coding")
    return Concept(
        tuple(
            Coding(_str(c.get("system")), _str(c.get("code")), _str(c.get("display")))
            for c in (codings if isinstance(codings, list) else [])
            if isinstance(c, Mapping)
        ),
        _str(value.get("text")),
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def source(key: tuple[str, str], when: datetime | None) -> Source:
    return Source(key[0], key[1], when)


def effective(resource: Any) -> datetime | None:
    """Clinically relevant time of an Observation/Condition/statement-like resource."""
    for name in ("effectiveDateTime", "effectiveInstant", "occurrenceDateTime", "onsetDateTime", "date"):
        value = getattr(resource, name, None)
        if value is not None:
            return parse.as_datetime(value)
    period = getattr(resource, "effectivePeriod", None)
    if period is not None and period.start is not None:
        return parse.as_datetime(period.start)
    for name in ("issued", "recordedDate", "authoredOn", "detected", "recordedDate"):
        value = getattr(resource, name, None)
        if value is not None:
            return parse.as_datetime(value)
    return None
