"""Every error the package raises on purpose.

* CdsError                 base; ``code`` is stable and ends up in OperationOutcomes and the audit log
  x InvalidInput           a request, fact document or patient file that cannot be understood (names the path)
  x RuleError              rule files
    + RuleLoadError        a rule set that does not pass the linter (carries the diagnostics)
  x EngineError            the rule engine failed on a document (never clinical content)
  x EstimationError        the PK estimator was given inputs it cannot use
  x MissingPrefetch        data the service needs was neither prefetched nor fetchable

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class CdsError(Exception):
    code = "error"


class InvalidInput(CdsError):
    """Input that cannot be understood; ``path`` is a JSON path such as ``prefetch.patient.birthDate``."""

    code = "invalid"

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class RuleError(CdsError):
    code = "rules"


class RuleLoadError(RuleError):
    code = "rules-invalid"

    def __init__(self, diagnostics: Sequence[Any]) -> None:
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if getattr(d, "severity", "error") == "error"]
        first = str(errors[0]) if errors else "no diagnostics"
        super().__init__(f"{len(errors)} error(s) in the rule files; first: {first}")


class EngineError(CdsError):
    code = "engine"


class EstimationError(CdsError):
    code = "estimation"


class MissingPrefetch(CdsError):
    code = "missing-prefetch"

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        super().__init__("missing prefetch data: " + ", ".join(self.keys))
