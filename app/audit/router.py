"""The audit log, read-only (audit:read)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Query
from pydantic import BaseModel

from app.audit import repository
from app.core.errors import Unprocessable
from app.core.http import JSON
from app.core.openapi import AUTH, errors
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.deps import Db, Principal, scoped
from app.routing import api_router

router = api_router(tags=["audit"])
AuditReader = Annotated[Principal, scoped("audit:read")]
Action = Literal["read", "create", "update", "delete", "export", "login", "login_failed", "denied", "archive"]


class AuditEventPublic(BaseModel):
    """One audit event; ``hash`` chains it to the previous event of its organization (null until sealed)."""

    id: str
    at: datetime
    actor_type: str | None
    actor_id: str | None
    organization_id: str
    action: Action
    resource_type: str | None
    resource_id: str | None
    patient_id: str | None
    request_id: str | None
    ip: str | None
    user_agent: str | None
    outcome: int
    details: dict
    seq: int | None
    hash: str | None
    prev_hash: str | None


RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
DATE_TIME = {"format": "date-time"}


def _timestamp(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 date-time with its offset; a number, a bare date or an impossible time is 422, not a guess."""
    if value is None:
        return None
    match = RFC3339.match(value)
    try:
        if match is None:
            raise ValueError(value)
        day, clock, fraction, offset = match.groups()
        fraction = (fraction or "")[:7]
        offset = "+00:00" if offset in ("Z", "z") else offset
        moment = datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
    except ValueError:
        raise Unprocessable(f"{name} is not a valid timestamp.", errors=[{"loc": ["query", name], "message": "not a timestamp"}]) from None
    return moment


@router.get("/v1/audit-events", response_model=ListOf[AuditEventPublic], responses=errors(*AUTH))
async def list_audit_events(
    db: Db,
    principal: AuditReader,
    page: Annotated[Page, Depends(page_params("audit-events"))],
    actor_id: Annotated[str | None, Query(max_length=36)] = None,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    action: Action | None = None,
    # Typed str (not str | None) so the schema says {"type": "string", "format": "date-time"}.
    since: Annotated[str, Query(description="RFC 3339 timestamp (inclusive).", json_schema_extra=DATE_TIME)] = None,  # noqa: RUF013
    until: Annotated[str, Query(description="RFC 3339 timestamp (exclusive).", json_schema_extra=DATE_TIME)] = None,  # noqa: RUF013
) -> JSON:
    """List the organization's audit events, oldest first, with filters."""
    filters = {"actor_id": actor_id, "patient_id": patient_id, "action": action,
               "since": _timestamp("since", since), "until": _timestamp("until", until)}
    return JSON(await repository.list_page(db, principal.organization_id, page, filters))
