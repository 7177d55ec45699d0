"""The request's resources by type, restricted to the patient; read element by element, or validated with R4B."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from cds.errors import InvalidInput
from cds.fhir import parse
from cds.fhir.element import Element, ElementError, Fields
from cds.fhir.terminology import Coding, Concept
from cds.fhir.types import HookRequest, Source

if TYPE_CHECKING:
    from cds.fhir.dosing import Product

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
        self.products: dict[tuple[str, str], Product] = {}  # cds.fhir.dosing.product, once per resource
        for key, raw in request.resources.items():
            if self._belongs(key, raw):
                self._by_type[key[0]].append(key)
        # The patient, and the drafts named by ``require`` (those the answer depends on), are validated whole.
        self._required = set(self.keys("Patient")[:1])

    def require(self, keys: Iterable[tuple[str, str]]) -> None:
        """Validate these resources whole when read (called before any of them is read)."""
        self._required.update(keys)

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
        """Each resource's raw CodeableConcept ``element``, read once, unchecked (a cheap pre-selection)."""
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
        """What ``reader`` takes from the resource, once per request. A resource the answer depends on (the
        draft orders, the patient) is validated whole with the R4B models first and must be readable
        (InvalidInput); any other is read only where the facts need it, and an element that is not of its
        FHIR datatype makes it unused, with a warning naming the element."""
        cache_key = (reader, key)
        if cache_key not in self._read:
            self._read[cache_key] = self._checked(key, reader) if key in self._required else self._lenient(key, reader)
        found: R | None = self._read[cache_key]
        return found

    def required(self, key: tuple[str, str], reader: Callable[[Element], R]) -> R:
        found = self.read(key, reader)
        if found is None:
            raise AssertionError(f"{key} is not a resource the answer depends on")
        return found

    def _lenient(self, key: tuple[str, str], reader: Callable[[Element], R]) -> R | None:
        try:
            return reader(Element(self.raw(key), self.request.paths[key], self.warnings))
        except ElementError as exc:
            self.warnings.append(f"{exc} (resource not used)")
            return None

    def _checked(self, key: tuple[str, str], reader: Callable[[Element], R]) -> R:
        path = self.request.paths[key]
        if key not in self._models:
            try:
                self._models[key] = parse.validate_resource(self.raw(key), path, self.warnings)
            except parse.ResourceError as exc:
                raise InvalidInput(exc.path, exc.message) from exc
        try:
            return reader(Element(Fields(self._models[key]), path, self.warnings))
        except ElementError as exc:
            raise InvalidInput(exc.path, exc.message) from exc


def raw_concept(value: object) -> Concept | None:
    """A CodeableConcept from unchecked JSON (used to pre-select resources before reading them)."""
    if not _mapping(value):
        return None
    codings = value.get("coding")
    found = [
        Coding(_str(c.get("system")), _str(c.get("code")), _str(c.get("display")))
        for c in (codings if isinstance(codings, list) else ())
        if _mapping(c)
    ]
    return Concept(tuple(found), _str(value.get("text")))


def _mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, dict) or isinstance(value, Mapping)  # JSON gives dicts: the ABC check is slower


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def source(key: tuple[str, str], when: datetime | None) -> Source:
    return Source(key[0], key[1], when)
