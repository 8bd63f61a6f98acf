"""Turns a finished request into one audit event (ids and codes only, never clinical values or tokens)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from app.audit import repository
from app.audit.context import AuditNote
from app.core.ids import new_id, utcnow

ACTIONS = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
DENIED = frozenset({401, 403, 404})


def _resource_type(template: str) -> str | None:
    """The last literal segment of the route, singular: /v1/courses/{id}/sessions -> session."""
    literals = [part for part in template.strip("/").split("/") if part and not part.startswith("{") and part != "v1"]
    if not literals:
        return None
    name = literals[-1].replace("-", "_")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _id_or_none(value: object) -> str | None:
    """An id as given by the caller, kept only if it could be one of ours (36 characters at most)."""
    return str(value) if value and len(str(value)) <= 36 else None


def event_for(request: Request, note: AuditNote, status: int, template: str, action: str | None = None) -> dict[str, Any]:
    """The audit row for a request that ended with ``status``."""
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


async def record(db: AsyncConnection, event: dict[str, Any]) -> None:
    """Append the event in the caller's transaction."""
    await repository.insert(db, event)
