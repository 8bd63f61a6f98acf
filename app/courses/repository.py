"""Every query on courses, each filtered by organization and the caller's caseload."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import context as audit
from app.core.errors import NotFound
from app.core.fastsql import Statement, UpdateById
from app.core.ids import utcnow
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import KeysetList, as_written, columns, fetch_page
from app.courses.models import Course, CourseExtension, CourseTransition
from app.deps import Principal
from app.formulations.models import Formulation, InventoryRelationship
from app.groups.models import GroupMember
from app.groups.repository import facilitated

COURSE_COLUMNS = (
    "id", "organization_id", "patient_id", "therapist_id", "protocol", "planned_sessions", "extension_sessions",
    "phase", "started_on", "ended_on", "end_reason", "diagnosis", "sessions_attended", "attended_in_phase",
    "latest_session_on", "risk_flag_open", "first_measure_on", "last_measure_on", "last_measure_session_number",
    "first_attended_on", "version", "created_at", "updated_at",
)
TRANSITION_PUBLIC = ("id", "course_id", "from_phase", "to_phase", "reason", "note", "by_type", "by_id", "at")
EXTENSION_PUBLIC = ("id", "course_id", "sessions", "reason", "by_type", "by_id", "created_at")
_course = columns(Course, COURSE_COLUMNS)
# What a list page reads: what service.present needs (no organization_id, no last_measure_on),
# timestamps as the API writes them.
LISTED_COLUMNS = tuple(name for name in COURSE_COLUMNS if name not in ("organization_id", "last_measure_on"))


def reach(principal: Principal) -> sa.ColumnElement[bool]:
    """The courses a caller may see: the organization's, narrowed to a clinician's own."""
    in_org = Course.organization_id == principal.organization_id
    if principal.sees_whole_organization:
        return in_org
    return sa.and_(in_org, Course.therapist_id == principal.id)


def _prebuilt_get() -> dict[tuple[bool, bool], Statement]:
    """The read-one statements, built once: (whole organization?, lock?) -> statement with bind parameters."""
    base = sa.select(*_course).where(Course.id == sa.bindparam("course_id"), Course.organization_id == sa.bindparam("org"))
    own = base.where(Course.therapist_id == sa.bindparam("me"))
    # SQLite has no row locks: there, writers hold the database lock instead (BEGIN IMMEDIATE).
    return {(whole, lock): Statement(stmt.with_for_update() if lock else stmt)
            for whole, stmt in ((True, base), (False, own)) for lock in (False, True)}


_GET = _prebuilt_get()


def _facilitated() -> dict[bool, Statement]:
    """A group member's course in a group the clinician facilitates (read only after their own courses missed)."""
    members = facilitated(GroupMember.course_id, sa.bindparam("me"))
    base = sa.select(*_course).where(Course.id == sa.bindparam("course_id"), Course.organization_id == sa.bindparam("org"),
                                     Course.id.in_(members))
    return {lock: Statement(base.with_for_update() if lock else base) for lock in (False, True)}


_FACILITATED = _facilitated()


async def get(db: AsyncConnection, principal: Principal, course_id: str, *, lock: bool = False) -> dict[str, Any]:
    """One course in reach, or 404; ``lock`` holds its row until the transaction ends."""
    params = {"course_id": course_id, "org": principal.organization_id, "me": principal.id}
    row = await _GET[(principal.sees_whole_organization, lock)].first(db, params)
    if row is None and not principal.sees_whole_organization:
        # A group member's course is reached by every facilitator of the group, not only its therapist (the lead).
        row = await _FACILITATED[lock].first(db, params)
    if row is None:
        raise NotFound("No such course.")
    audit.note(patient_id=row["patient_id"])  # whatever the request touches under the course is this patient's
    return dict(row)


def _equals(column: Any) -> Any:
    return lambda value: column == value


_EQUAL_FILTERS = ("patient_id", "therapist_id", "phase", "protocol", "risk_flag_open")
_LIST = KeysetList(as_written(columns(Course, LISTED_COLUMNS)), Course.id, {
    "organization_id": lambda value: Course.organization_id == value,
    "caseload_of": lambda value: Course.therapist_id == value,
    "open": lambda _: Course.ended_on.is_(None),
    "closed": lambda _: Course.ended_on.is_not(None),
    **{name: _equals(getattr(Course, name)) for name in _EQUAL_FILTERS},
})


async def list_page(db: AsyncConnection, principal: Principal, page: Page, filters: dict[str, Any]) -> dict:
    """A page of courses in reach (as ``reach``), narrowed by the list filters."""
    where: dict[str, Any] = {"organization_id": principal.organization_id}
    if not principal.sees_whole_organization:
        where["caseload_of"] = principal.id
    where |= {name: filters[name] for name in _EQUAL_FILTERS if filters.get(name) is not None}
    if filters.get("open") is not None:
        where["open" if filters["open"] else "closed"] = None
    return await _LIST.page(db, page, where)


async def insert(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a course and return its columns."""
    row = new_row(Course, values)
    await db.execute(sa.insert(Course).values(row))
    return {name: row[name] for name in COURSE_COLUMNS}


_save = UpdateById(Course, _course, {"version": Course.version + 1})


async def save(db: AsyncConnection, course_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Write changes to a locked course, bumping its version; returns the new row."""
    row = await _save.one(db, course_id, changes | {"updated_at": utcnow()})
    if row is None:
        raise NotFound("No such course.")
    return row


async def save_later(db: AsyncConnection, course_id: str, changes: dict[str, Any]) -> None:
    """``save`` for a course the transaction holds locked, when nothing needs the new row."""
    await _save.later(db, course_id, changes | {"updated_at": utcnow()})


async def patient_has_open_course(db: AsyncConnection, patient_id: str) -> bool:
    """Whether the patient already has a course that has not ended (S8)."""
    query = sa.select(Course.id).where(Course.patient_id == patient_id, Course.ended_on.is_(None)).limit(1)
    return (await db.scalar(query)) is not None


async def formulation_and_inventory(db: AsyncConnection, course_id: str) -> tuple[Any, int]:
    """The course's formulation row (or None) and the size of its inventory, for P2 and P3."""
    formulation = (
        await db.execute(sa.select(Formulation.status, Formulation.problem_areas).where(Formulation.course_id == course_id))
    ).first()
    count = await db.scalar(
        sa.select(sa.func.count()).select_from(InventoryRelationship).where(InventoryRelationship.course_id == course_id)
    )
    return formulation, int(count or 0)


async def add_transition(db: AsyncConnection, values: dict[str, Any]) -> None:
    """Record a phase change."""
    await db.execute(sa.insert(CourseTransition).values(new_row(CourseTransition, values)))


async def add_extension(db: AsyncConnection, values: dict[str, Any]) -> None:
    """Record an approved extension."""
    await db.execute(sa.insert(CourseExtension).values(new_row(CourseExtension, values)))


async def history(db: AsyncConnection, table: Any, names: tuple[str, ...], course_id: str, page: Page) -> dict:
    """A page of a course's transitions or extensions, oldest first."""
    query = sa.select(*columns(table, names)).where(table.course_id == course_id)
    return await fetch_page(db, query, table.id, page)
