"""Errors under /fhir/ as FHIR OperationOutcome (application/fhir+json) instead of RFC 9457 problems.

The core handlers render every error once; the app registers ``outcome_response`` as the renderer
of requests under ``PREFIX`` (``app.main``), so the handlers hand it the problem they built and the
stable ``code`` and the safe ``detail`` are the same in both formats.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from app.core.http import JSON, dumps

PREFIX = "/fhir/"
MEDIA_TYPE = "application/fhir+json"
PROBLEM_CODES = "https://ipt.example/problems"  # the namespace of api.md's stable error codes

# HTTP status -> OperationOutcome issue type (http://hl7.org/fhir/R4/valueset-issue-type.html).
ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    428: "required",
    429: "throttled",
    500: "exception",
    503: "transient",
}


class FhirJSON(JSON):
    """A FHIR resource as application/fhir+json."""

    media_type = MEDIA_TYPE


def outcome(status: int, code: str, detail: str, errors: Any = None) -> dict[str, Any]:
    """An OperationOutcome: one error issue with the FHIR issue type, our stable code and the safe detail, or,
    when the problem names elements by FHIRPath (app.fhir.intake), one such issue per element."""
    issue_type = ISSUE_TYPES.get(status, "exception" if status >= 500 else "processing")
    details = {"coding": [{"system": PROBLEM_CODES, "code": code}], "text": detail}
    located = [e for e in errors if isinstance(e, dict) and e.get("expression")] if isinstance(errors, list) else []
    if not located:
        return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": issue_type, "details": details}]}
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": e.get("issue", issue_type),
                   "details": {**details, "text": e["message"]}, "expression": list(e["expression"])} for e in located],
    }


def outcome_response(status: int, problem: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """The OperationOutcome answer for a problem the core handlers built (headers such as WWW-Authenticate kept)."""
    body = outcome(status, str(problem.get("code", "error")), str(problem.get("detail", "")), problem.get("errors"))
    return Response(dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)
