"""The transactional outbox: events are rows written with the change, delivered later by the worker."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.fastsql import Statement
from app.core.ids import new_id, utcnow
from app.webhooks.models import OutboxEvent

EVENT_TYPES = ("course.created", "course.phase_changed", "course.closed", "session.recorded", "measure.recorded",
               "risk.flagged",
               "group.session_recorded", "group.member_joined", "group.member_left")


_insert = Statement(sa.insert(OutboxEvent).values(
    {name: sa.bindparam(name) for name in ("id", "organization_id", "type", "data", "created_at")}
))


async def emit(db: AsyncConnection, organization_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Queue an event in the caller's transaction: ids and facts only, never names or free text."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    await _insert.later(db, {"id": new_id(), "organization_id": organization_id, "type": event_type, "data": data,
                               "created_at": utcnow()})
