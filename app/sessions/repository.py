"""Every query on therapy sessions (callers have already checked the course is in reach)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.fastsql import insert_row
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, one_or_404, update_versioned
from app.sessions.models import TherapySession

PUBLIC = ("id", "course_id", "number", "held_on", "attendance", "modality", "duration_minutes",
          "problem_areas_addressed", "note", "phase", "version", "created_at", "updated_at")
_public = columns(TherapySession, PUBLIC)


_insert = insert_row(TherapySession)


async def insert(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a session and return its public fields."""
    row = new_row(TherapySession, values)
    await _insert.later(db, row)
    return {name: row[name] for name in PUBLIC}


async def get(db: AsyncConnection, course_id: str, session_id: str) -> dict[str, Any]:
    """One session of the course, or 404."""
    query = sa.select(*_public).where(TherapySession.id == session_id, TherapySession.course_id == course_id)
    return await one_or_404(db, query, "No such session.")


async def list_page(db: AsyncConnection, course_id: str, page: Page) -> dict:
    """A page of the course's sessions in the order they were recorded."""
    query = sa.select(*_public).where(TherapySession.course_id == course_id)
    return await fetch_page(db, query, TherapySession.id, page)


async def latest_two(db: AsyncConnection, course_id: str) -> list[dict[str, Any]]:
    """The most recent session and the one before it (for deletion)."""
    query = (
        sa.select(TherapySession.id, TherapySession.held_on)
        .where(TherapySession.course_id == course_id)
        .order_by(TherapySession.id.desc())
        .limit(2)
    )
    return [dict(r) for r in (await db.execute(query)).mappings().all()]


async def update(db: AsyncConnection, course_id: str, session_id: str, version: int, changes: dict) -> dict[str, Any]:
    """Change a session at the version the caller read."""
    where = sa.and_(TherapySession.id == session_id, TherapySession.course_id == course_id)
    return await update_versioned(db, TherapySession, where, version, changes, _public)


async def delete(db: AsyncConnection, session_id: str) -> None:
    """Remove a session row."""
    await db.execute(sa.delete(TherapySession).where(TherapySession.id == session_id))


async def all_of_course(db: AsyncConnection, course_id: str) -> list[dict[str, Any]]:
    """Every session of the course, by date (then in the order recorded)."""
    query = sa.select(*_public).where(TherapySession.course_id == course_id).order_by(TherapySession.held_on, TherapySession.id)
    return [dict(r) for r in (await db.execute(query)).mappings().all()]
