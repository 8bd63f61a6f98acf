"""Every query on measures and risk acknowledgements (callers have already checked the course is in reach)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.fastsql import Statement, insert_row
from app.core.ids import utcnow
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, one_or_404
from app.measures.models import Measure, RiskAcknowledgement
from app.sessions.models import TherapySession

PUBLIC = ("id", "course_id", "session_id", "instrument", "administered_on", "items", "total", "severity",
          "risk_items", "session_number", "risk_flag_open", "acknowledged_at", "acknowledged_by_id", "version",
          "created_at", "created_by")
ACK_PUBLIC = ("id", "course_id", "measure_id", "note", "by_type", "by_id", "at", "version")
_public = columns(Measure, PUBLIC)
_ack = columns(RiskAcknowledgement, ACK_PUBLIC)
# Same-day administrations keep the order they were recorded in (ids sort in creation order).
_CHRONOLOGICAL = (Measure.administered_on, Measure.id)


_insert = insert_row(Measure)
_first_of_instrument = Statement(
    sa.select(Measure.id, Measure.total, Measure.administered_on)
    .where(Measure.course_id == sa.bindparam("course_id"), Measure.instrument == sa.bindparam("instrument"))
    .order_by(*_CHRONOLOGICAL)
    .limit(1)
)


async def insert(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a measure and return its public fields."""
    row = new_row(Measure, values)
    await _insert.later(db, row)
    return {name: row[name] for name in PUBLIC}


async def get(db: AsyncConnection, course_id: str, measure_id: str) -> dict[str, Any]:
    """One measure of the course, or 404."""
    query = sa.select(*_public).where(Measure.id == measure_id, Measure.course_id == course_id)
    return await one_or_404(db, query, "No such measure in this course.")


async def list_page(db: AsyncConnection, course_id: str, page: Page, instrument: str | None) -> dict:
    """A page of the course's measures in the order they were recorded."""
    query = sa.select(*_public).where(Measure.course_id == course_id)
    if instrument is not None:
        query = query.where(Measure.instrument == instrument)
    return await fetch_page(db, query, Measure.id, page)


_of_course = Statement(sa.select(*_public).where(Measure.course_id == sa.bindparam("course_id")).order_by(*_CHRONOLOGICAL))
# Outcomes compute from these columns alone and charts from the next ones: neither reads the items
# or the risk items (JSON, decoded per row), nor the columns it does not show.
POINT = ("id", "instrument", "administered_on", "session_number", "total", "severity")
CHART_POINT = ("session_number", "total", "risk_items", "risk_flag_open")
_points_of_course = Statement(
    sa.select(*columns(Measure, POINT)).where(Measure.course_id == sa.bindparam("course_id")).order_by(*_CHRONOLOGICAL)
)
_chart_points = Statement(
    sa.select(*columns(Measure, CHART_POINT))
    .where(Measure.course_id == sa.bindparam("course_id"), Measure.instrument == sa.bindparam("instrument"))
    .order_by(*_CHRONOLOGICAL)
)


async def chronological(db: AsyncConnection, course_id: str) -> list[dict[str, Any]]:
    """Every measure of the course, oldest administration first."""
    return [dict(m) for m in await _of_course.mappings(db, {"course_id": course_id})]


async def points(db: AsyncConnection, course_id: str) -> list[Mapping[str, Any]]:
    """The POINT columns of every measure of the course, oldest administration first (read-only rows)."""
    return await _points_of_course.mappings(db, {"course_id": course_id})


async def points_of_courses(db: AsyncConnection, course_ids: list[str]) -> list[Mapping[str, Any]]:
    """The POINT columns (and course id) of every measure of several courses, oldest first: one query (a group)."""
    query = sa.select(Measure.course_id, *columns(Measure, POINT)).where(Measure.course_id.in_(course_ids))
    return list((await db.execute(query.order_by(*_CHRONOLOGICAL))).mappings().all())


async def chart_points(db: AsyncConnection, course_id: str, instrument: str) -> list[Mapping[str, Any]]:
    """The CHART_POINT columns of the course's measures of one instrument, oldest first (read-only rows)."""
    return await _chart_points.mappings(db, {"course_id": course_id, "instrument": instrument})


async def baseline(db: AsyncConnection, course_id: str, instrument: str) -> dict[str, Any] | None:
    """The first administration (id and total) of one instrument in the course, or None."""
    return await _first_of_instrument.first(db, {"course_id": course_id, "instrument": instrument})


async def baselines(db: AsyncConnection, course_id: str, instrument: str | None = None) -> dict[str, dict[str, Any]]:
    """The first administration (id and total) of each instrument in the course."""
    query = (
        sa.select(Measure.instrument, Measure.id, Measure.total)
        .where(Measure.course_id == course_id)
        .order_by(*_CHRONOLOGICAL)
    )
    if instrument is not None:
        query = query.where(Measure.instrument == instrument)
    first: dict[str, dict[str, Any]] = {}
    for row in (await db.execute(query)).mappings().all():
        first.setdefault(row["instrument"], {"id": row["id"], "total": row["total"]})
    return first


async def attended_by(db: AsyncConnection, course_id: str, day: date) -> int:
    """How many attended sessions of the course were held on or before ``day``."""
    query = sa.select(sa.func.count()).where(
        TherapySession.course_id == course_id, TherapySession.number.is_not(None), TherapySession.held_on <= day
    )
    return int(await db.scalar(query) or 0)


async def renumber(db: AsyncConnection, course_id: str) -> None:
    """Recompute every measure's session number after the course's sessions changed."""
    linked = sa.select(TherapySession.number).where(TherapySession.id == Measure.session_id).scalar_subquery()
    counted = (
        sa.select(sa.func.count())
        .where(TherapySession.course_id == Measure.course_id, TherapySession.number.is_not(None),
               TherapySession.held_on <= Measure.administered_on)
        .scalar_subquery()
    )
    number = sa.func.coalesce(linked, counted)
    await db.execute(
        sa.update(Measure)
        .where(Measure.course_id == course_id, Measure.session_number.is_distinct_from(number))
        .values(session_number=number, version=Measure.version + 1)
    )


async def course_facts(db: AsyncConnection, course_id: str) -> dict[str, Any]:
    """The measure facts the course row keeps: first and last dates, the last one's session, open flags."""
    of_course = Measure.course_id == course_id
    first_on, last_on, open_flags = (await db.execute(
        sa.select(sa.func.min(Measure.administered_on), sa.func.max(Measure.administered_on),
                  sa.func.sum(sa.case((Measure.risk_flag_open, 1), else_=0))).where(of_course)
    )).one()
    latest = sa.select(Measure.session_number).where(of_course).order_by(*(c.desc() for c in _CHRONOLOGICAL)).limit(1)
    return {
        "first_measure_on": first_on,
        "last_measure_on": last_on,
        "last_measure_session_number": await db.scalar(latest),
        "risk_flag_open": bool(open_flags),
    }


async def close_flag(db: AsyncConnection, measure_id: str, by_id: str) -> bool:
    """Close the measure's open risk flag; False when it was not open."""
    stmt = (
        sa.update(Measure)
        .where(Measure.id == measure_id, Measure.risk_flag_open)
        .values(risk_flag_open=False, acknowledged_at=utcnow(), acknowledged_by_id=by_id, version=Measure.version + 1)
        .returning(Measure.id)
    )
    return (await db.execute(stmt)).first() is not None


async def insert_acknowledgement(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Record an acknowledgement and return its public fields."""
    row = new_row(RiskAcknowledgement, values)
    await db.execute(sa.insert(RiskAcknowledgement).values(row))
    return {name: row[name] for name in ACK_PUBLIC}


async def list_acknowledgements(db: AsyncConnection, course_id: str, page: Page) -> dict:
    """A page of the course's acknowledgements, oldest first."""
    query = sa.select(*_ack).where(RiskAcknowledgement.course_id == course_id)
    return await fetch_page(db, query, RiskAcknowledgement.id, page)
