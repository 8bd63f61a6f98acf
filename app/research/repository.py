"""Every query of the research export: the organization's measures and courses, streamed in course order.

The export reaches the whole organization (researchers see no caseload), and every query is
filtered by the organization on each table it reads. Only the columns the rows need are read:
never a name, an external id, a note, a summary, a label or a diagnosis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from app.core.driver import begin_on_driver, driver_error
from app.core.fastsql import for_driver
from app.courses.models import Course
from app.formulations.models import Formulation
from app.groups.models import GroupMember
from app.measures.models import Measure
from app.patients.models import Patient
from app.sessions.models import TherapySession

BATCH_ROWS = 5000  # rows per fetch from the server-side cursor, and per chunk written


@dataclass(frozen=True, slots=True)
class ExportFilters:
    """What narrows an export: an instrument, a protocol, and the years the courses started in."""

    instrument: str | None = None
    protocol: str | None = None
    started_year_from: int | None = None
    started_year_to: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filters that were given (for the audit event)."""
        return {k: v for k, v in (("instrument", self.instrument), ("protocol", self.protocol),
                                  ("started_year_from", self.started_year_from),
                                  ("started_year_to", self.started_year_to)) if v is not None}


def _course_filters(query: sa.Select, filters: ExportFilters) -> sa.Select:
    if filters.protocol is not None:
        query = query.where(Course.protocol == filters.protocol)
    if filters.started_year_from is not None:
        query = query.where(Course.started_on >= date(filters.started_year_from, 1, 1))
    if filters.started_year_to is not None:
        query = query.where(Course.started_on < date(filters.started_year_to + 1, 1, 1))
    return query


def _areas() -> sa.ColumnElement:
    # As text, parsed only once per course (rows.focal_areas), not once per measure row.
    return sa.cast(Formulation.problem_areas, sa.Text)


def _total() -> sa.ColumnElement:
    # A float from the driver (a Decimal needs converting per row); rows.py makes it a whole number again.
    return sa.cast(Measure.total, sa.Float)


def measure_query(organization_id: str, filters: ExportFilters) -> sa.Select:
    """The organization's measures with their course facts (rows.MeasureRows), grouped by course, oldest first."""
    query = (
        sa.select(
            Measure.course_id, Course.patient_id, Course.protocol, Course.started_on, Patient.birth_date, Patient.sex,
            GroupMember.group_id, _areas(), Measure.instrument, Measure.administered_on, sa.cast(Measure.items, sa.Text), _total(),
            Measure.severity, Measure.session_number,
            # The phase the session numbered session_number was held in; a baseline before session 1 is 'initial'.
            sa.case((TherapySession.phase.is_not(None), TherapySession.phase),
                    (Measure.session_number == 0, sa.literal("initial")), else_=sa.null()),
        )
        .select_from(Measure)
        .join(Course, Course.id == Measure.course_id)
        .join(Patient, Patient.id == Course.patient_id)
        .outerjoin(Formulation, Formulation.course_id == Course.id)
        .outerjoin(GroupMember, GroupMember.course_id == Course.id)
        .outerjoin(TherapySession, sa.and_(TherapySession.course_id == Measure.course_id,
                                           TherapySession.number == Measure.session_number))
        .where(Measure.organization_id == organization_id, Course.organization_id == organization_id,
               Patient.organization_id == organization_id)
        .order_by(Measure.course_id, Measure.administered_on, Measure.id)
    )
    if filters.instrument is not None:
        query = query.where(Measure.instrument == filters.instrument)
    return _course_filters(query, filters)


def course_query(organization_id: str, filters: ExportFilters) -> sa.Select:
    """The organization's courses, each joined to its measures oldest first (rows.CourseRows); one row per measure."""
    query = (
        sa.select(
            Course.id, Course.patient_id, Course.protocol, Course.started_on, Patient.birth_date, Patient.sex,
            GroupMember.group_id, _areas(), Course.planned_sessions, Course.extension_sessions, Course.phase, Course.end_reason,
            Course.sessions_attended, Course.ended_on,
            Measure.instrument, Measure.administered_on, Measure.session_number, _total(), Measure.severity,
        )
        .select_from(Course)
        .join(Patient, Patient.id == Course.patient_id)
        .outerjoin(Formulation, Formulation.course_id == Course.id)
        .outerjoin(GroupMember, GroupMember.course_id == Course.id)
        .outerjoin(Measure, Measure.course_id == Course.id)
        .where(Course.organization_id == organization_id, Patient.organization_id == organization_id)
        .order_by(Course.id, Measure.administered_on, Measure.id)
    )
    if filters.instrument is not None:
        given = aliased(Measure)
        query = query.where(sa.exists().where(given.course_id == Course.id, given.instrument == filters.instrument))
    return _course_filters(query, filters)


QUERIES = {"measures": measure_query, "courses": course_query}


async def count(db: AsyncConnection, dataset: str, organization_id: str, filters: ExportFilters) -> int:
    """How many rows an export will have (for a progress bar; the stream may differ if data changes meanwhile)."""
    query = QUERIES[dataset](organization_id, filters).order_by(None)
    if dataset == "courses":
        query = query.with_only_columns(Course.id).distinct()
    return int(await db.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)


async def stream(db: AsyncConnection, dataset: str, organization_id: str, filters: ExportFilters,
                 batch: int | None = None) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The export's raw rows in batches of tuples, from a server-side cursor; memory holds one batch.

    On PostgreSQL the query runs in a server-side cursor on the connection's own asyncpg
    connection, fetched ``batch`` rows at a time as records: SQLAlchemy's row objects and
    result processing cost more per row than the export itself, and its streaming fetched in
    small pieces. Every value the query selects arrives from asyncpg in its final Python type
    (the total is cast to float, JSON to text). On SQLite, SQLAlchemy's own streaming result
    turns stored text into dates.
    """
    batch = batch or BATCH_ROWS
    query = QUERIES[dataset](organization_id, filters)
    if db.dialect.name == "postgresql":
        async for rows in _postgres_batches(db, query, batch):
            yield rows
        return
    result = await db.stream(query.execution_options(yield_per=batch))
    try:
        async for partition in result.partitions(batch):
            yield partition
    finally:
        await result.close()


async def _postgres_batches(db: AsyncConnection, query: sa.Select, batch: int) -> AsyncIterator[list]:
    """Batches from a server-side cursor, the next one already asked for while the caller works on the last.

    FETCH is request-and-answer: without asking ahead, PostgreSQL would sit idle while Python
    encodes a batch, and Python while PostgreSQL produces the next one.
    """
    sql, args = for_driver(query, db.dialect)
    driver = await begin_on_driver(db)  # asyncpg's cursors live inside the request's transaction
    try:
        cursor = await driver.cursor(sql, *args)
    except Exception as exc:
        raise await driver_error(db, exc, sql, args) from exc
    ahead = asyncio.ensure_future(cursor.fetch(batch))
    try:
        while rows := await ahead:
            ahead = asyncio.ensure_future(cursor.fetch(batch))
            await asyncio.sleep(0)  # let the task send its FETCH before the caller takes the CPU
            yield rows
    finally:
        # Stopped early (the client went away): let the FETCH in flight finish rather than cut the
        # connection off mid-answer; at most one batch more is read. The cursor ends with the transaction.
        await asyncio.wait([ahead])
        if not ahead.cancelled():
            ahead.exception()  # retrieved, so asyncio does not log it
