"""Reading /metrics in tests: the exposition text parsed by prometheus-client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Samples:
    samples: tuple[Sample, ...]

    def of(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of ``name`` whose labels include ``labels`` (0 when there is none)."""
        return sum(s.value for s in self.of(name) if labels.items() <= s.labels.items())


def samples(text: str) -> Samples:
    return Samples(tuple(s for family in text_string_to_metric_families(text) for s in family.samples))
