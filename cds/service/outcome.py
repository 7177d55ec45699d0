"""Error responses: a FHIR OperationOutcome naming what was wrong, never internals."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# CDS Hooks does not name codes for most errors; these are FHIR issue-type codes.
ISSUE_CODES = {
    400: "invalid",
    404: "not-found",
    412: "not-found",
    413: "too-costly",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def operation_outcome(status: int, diagnostics: str, expression: list[str] | None = None) -> JSONResponse:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "processing"),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = expression
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status_code=status)


def unauthorized() -> JSONResponse:
    """Any authentication failure: a bare 401 (the reason is logged, never returned)."""
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}, status_code=401
    )


def throttled(retry_after_s: int) -> JSONResponse:
    """Too many failed authentications from one client: wait before trying again."""
    issue = {"severity": "error", "code": "throttled", "diagnostics": "too many failed authentications; retry later"}
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=429,
        headers={"Retry-After": str(retry_after_s)},
    )
