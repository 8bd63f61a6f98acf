"""Turns a finished request into one audit event (ids and codes only, never clinical values or tokens)."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.audit import repository
from app.audit.context import AuditNote
from app.core.ids import new_id, utcnow

ACTIONS = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
DENIED = frozenset({401, 403, 404})


@cache  # one route template, one answer: worked out once per route
def _resource_type(template: str) -> str | None:
    """The last literal segment of the route, singular: /v1/courses/{id}/sessions -> session."""
    literals = [part for part in template.strip("/").split("/") if part and not part.startswith("{") and part != "v1"]
    if not literals:
        return None
    name = literals[-1].replace("-", "_")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _id_or_none(value: object) -> str | None:
    """An id as given by the caller, kept only if it could be one of ours (36 printable characters at most)."""
    return str(value) if value and len(str(value)) <= 36 and str(value).isprintable() else None


def _note_response(note: AuditNote, response: Response, template: str) -> None:
    """What a single-resource response names, for routes that noted nothing: its id and its patient.

    A created resource's id comes from its Location header; the body is parsed only when no
    repository noted the patient (most reads and writes under a course or patient do).
    """
    if not 200 <= response.status_code < 300:
        return
    location = response.headers.get("location")
    if location and note.resource_id is None:
        note.resource_id = location.rstrip("/").rsplit("/", 1)[-1]
        if note.patient_id is None and template.startswith("/v1/patients"):
            note.patient_id = note.resource_id
    if note.patient_id is not None or "etag" not in response.headers:
        return
    try:
        body = orjson.loads(response.body)
    except (orjson.JSONDecodeError, TypeError):
        return
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return
    if note.resource_id is None:
        note.resource_id = body["id"]
    if note.patient_id is None:
        patient_id = body["id"] if template.startswith("/v1/patients") else body.get("patient_id")
        note.patient_id = patient_id if isinstance(patient_id, str) else None


def event_for(
    request: Request, note: AuditNote, status: int, template: str, action: str | None = None,
    response: Response | None = None,
) -> dict[str, Any]:
    """The audit row for a request that ended with ``status`` (and ``response``, when it has one)."""
    if response is not None:
        _note_response(note, response, template)
    principal = getattr(request.state, "principal", None)
    claims = getattr(request.state, "claims", None)
    actor = principal or claims
    params = request.path_params
    resource_id = note.resource_id or (list(params.values())[-1] if params else None)
    details = dict(note.details)
    chosen = details.pop("action", None)
    return {
        "id": new_id(),
        "organization_id": (principal.organization_id if principal else claims.org if claims else "") or "",
        "at": utcnow(),
        "actor_type": (principal.kind if principal else claims.kind) if actor else None,
        "actor_id": (principal.id if principal else claims.sub) if actor else None,
        "action": "denied" if status in DENIED else (action or chosen or ACTIONS.get(request.method, "read")),
        "resource_type": note.resource_type or _resource_type(template),
        "resource_id": _id_or_none(resource_id),
        "patient_id": _id_or_none(note.patient_id or params.get("patient_id")),
        "request_id": getattr(request.state, "request_id", None),
        "ip": request.client.host if request.client else None,
        "user_agent": (request.headers.get("user-agent") or "")[:300] or None,
        "outcome": status,
        "details": details,
    }


def operator_event(organization_id: str, action: str, resource_type: str, details: dict[str, Any],
                   operator: str | None = None, outcome: int = 200) -> dict[str, Any]:
    """The audit row for work an operator did with the ``ipt`` command (no request, no token)."""
    return {
        "id": new_id(), "organization_id": organization_id, "at": utcnow(), "actor_type": "operator",
        "actor_id": (operator or "")[:36] or None, "action": action, "resource_type": resource_type,
        "resource_id": None, "patient_id": None, "request_id": None, "ip": None, "user_agent": "ipt-cli",
        "outcome": outcome, "details": details,
    }


async def record(db: AsyncConnection, event: dict[str, Any], course_id: str | None = None) -> None:
    """Append the event in the caller's transaction; a course's patient is filled in when nothing named it."""
    course_id = _id_or_none(course_id)
    if event["patient_id"] is None and course_id and event["organization_id"]:
        event["patient_id"] = await repository.patient_of_course(db, event["organization_id"], course_id)
    await repository.insert(db, event)
