"""Every query on groups, facilitators, members and group sessions, each filtered by organization and reach.

Reach: supervisors and integrations reach every group of the organization; a clinician the groups
they facilitate. Anything else, another organization's included, is a 404.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import NotFound
from app.core.ids import utcnow
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, update_versioned
from app.courses.models import Course
from app.deps import Principal
from app.groups.models import GroupFacilitator, GroupMember, GroupSession, IptGroup
from app.sessions.models import TherapySession

GROUP_COLUMNS = ("id", "organization_id", "name", "protocol", "planned_sessions", "capacity", "status",
                 "sessions_held", "latest_session_on", "version", "created_at", "updated_at")
MEMBER_PUBLIC = ("id", "group_id", "patient_id", "course_id", "status", "pre_group_meetings", "last_pre_group_on",
                 "left_on", "left_reason", "version", "created_at")
SESSION_PUBLIC = ("id", "group_id", "number", "held_on", "phase", "duration_minutes", "created_at")
_group = columns(IptGroup, GROUP_COLUMNS)
_member = columns(GroupMember, MEMBER_PUBLIC)
_session = columns(GroupSession, SESSION_PUBLIC)


def reach(principal: Principal) -> sa.ColumnElement[bool]:
    """The groups a caller may see: the organization's, narrowed to a clinician's own (as facilitator)."""
    in_org = IptGroup.organization_id == principal.organization_id
    if principal.sees_whole_organization:
        return in_org
    mine = sa.select(GroupFacilitator.group_id).where(GroupFacilitator.user_id == principal.id)
    return sa.and_(in_org, IptGroup.id.in_(mine))


async def _facilitators(db: AsyncConnection, group_ids: list[str]) -> dict[str, list[str]]:
    query = (sa.select(GroupFacilitator.group_id, GroupFacilitator.user_id)
             .where(GroupFacilitator.group_id.in_(group_ids))
             .order_by(GroupFacilitator.group_id, GroupFacilitator.lead.desc(), GroupFacilitator.user_id))
    found: dict[str, list[str]] = {group_id: [] for group_id in group_ids}
    for group_id, user_id in (await db.execute(query)).all():
        found[group_id].append(user_id)
    return found


async def _members(db: AsyncConnection, group_ids: list[str]) -> dict[str, int]:
    query = (sa.select(GroupMember.group_id, sa.func.count()).where(GroupMember.group_id.in_(group_ids),
                                                                    GroupMember.status == "active")
             .group_by(GroupMember.group_id))
    return {group_id: count for group_id, count in (await db.execute(query)).all()}


async def _complete(db: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [row["id"] for row in rows]
    facilitators, members = await _facilitators(db, ids), await _members(db, ids)
    return [row | {"facilitator_ids": facilitators.get(row["id"], []), "members": members.get(row["id"], 0)}
            for row in rows]


async def get(db: AsyncConnection, principal: Principal, group_id: str, *, lock: bool = False) -> dict[str, Any]:
    """One group in reach, with its facilitators and member count, or 404; ``lock`` holds its row."""
    query = sa.select(*_group).where(IptGroup.id == group_id, reach(principal))
    if lock:
        query = query.with_for_update(of=IptGroup)
    row = (await db.execute(query)).mappings().first()
    if row is None:
        raise NotFound("No such group.")
    return (await _complete(db, [dict(row)]))[0]


async def list_page(db: AsyncConnection, principal: Principal, page: Page) -> dict:
    """A page of the groups in reach."""
    found = await fetch_page(db, sa.select(*_group).where(reach(principal)), IptGroup.id, page)
    found["data"] = await _complete(db, found["data"])
    return found


async def insert(db: AsyncConnection, values: dict[str, Any], facilitator_ids: list[str]) -> dict[str, Any]:
    """Insert a group and its facilitators (the first leads)."""
    row = new_row(IptGroup, values)
    await db.execute(sa.insert(IptGroup).values(row))
    await set_facilitators(db, row["id"], facilitator_ids)
    return {name: row[name] for name in GROUP_COLUMNS}


async def set_facilitators(db: AsyncConnection, group_id: str, facilitator_ids: list[str]) -> None:
    """Replace the group's facilitators."""
    await db.execute(sa.delete(GroupFacilitator).where(GroupFacilitator.group_id == group_id))
    await db.execute(sa.insert(GroupFacilitator), [
        {"group_id": group_id, "user_id": user_id, "lead": n == 0} for n, user_id in enumerate(facilitator_ids)])


async def save(db: AsyncConnection, group_id: str, version: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply changes if the group is at ``version`` (412 otherwise)."""
    return await update_versioned(db, IptGroup, IptGroup.id == group_id, version, changes, _group)


async def advance(db: AsyncConnection, group_id: str, changes: dict[str, Any]) -> None:
    """Update the group's counters (under its row lock), bumping its version."""
    await db.execute(sa.update(IptGroup).where(IptGroup.id == group_id)
                     .values(changes | {"version": IptGroup.version + 1, "updated_at": utcnow()}))


# members ---------------------------------------------------------------------------------------
async def insert_member(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a member."""
    row = new_row(GroupMember, values)
    await db.execute(sa.insert(GroupMember).values(row))
    return {name: row[name] for name in MEMBER_PUBLIC}


async def members(db: AsyncConnection, group_id: str, *, active_only: bool = False) -> list[dict[str, Any]]:
    """The group's members, in the order they joined."""
    query = sa.select(*_member).where(GroupMember.group_id == group_id)
    if active_only:
        query = query.where(GroupMember.status == "active")
    return [dict(row) for row in (await db.execute(query.order_by(GroupMember.id))).mappings().all()]


async def member(db: AsyncConnection, group_id: str, member_id: str) -> dict[str, Any]:
    """One member of the group, or 404."""
    query = sa.select(*_member).where(GroupMember.group_id == group_id, GroupMember.id == member_id)
    row = (await db.execute(query)).mappings().first()
    if row is None:
        raise NotFound("No such member of this group.")
    return dict(row)


async def save_member(db: AsyncConnection, member_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change a member (bumping its version)."""
    stmt = (sa.update(GroupMember).where(GroupMember.id == member_id)
            .values(changes | {"version": GroupMember.version + 1}).returning(*_member))
    return dict((await db.execute(stmt)).mappings().one())


# group sessions ----------------------------------------------------------------------------------
async def insert_session(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a group session."""
    row = new_row(GroupSession, values)
    await db.execute(sa.insert(GroupSession).values(row))
    return {name: row[name] for name in SESSION_PUBLIC}


async def sessions(db: AsyncConnection, group_id: str) -> list[dict[str, Any]]:
    """The group's sessions in order, each with every member's attendance."""
    rows = (await db.execute(sa.select(*_session).where(GroupSession.group_id == group_id)
                             .order_by(GroupSession.number))).mappings().all()
    attendance = sa.select(TherapySession.group_session_id, GroupMember.id, TherapySession.attendance).join(
        GroupMember, GroupMember.course_id == TherapySession.course_id).where(
        TherapySession.group_session_id.in_([row["id"] for row in rows]))
    by_session: dict[str, list[dict[str, str]]] = {}
    for session_id, member_id, present in (await db.execute(attendance.order_by(GroupMember.id))).all():
        by_session.setdefault(session_id, []).append({"member_id": member_id, "attendance": present})
    return [dict(row) | {"attendance": by_session.get(row["id"], [])} for row in rows]


async def member_courses(db: AsyncConnection, course_ids: list[str]) -> list[dict[str, Any]]:
    """The counters of the members' courses, for a group session (locked with the group's row)."""
    query = sa.select(Course.id, Course.phase, Course.sessions_attended, Course.attended_in_phase,
                      Course.first_attended_on, Course.patient_id, Course.therapist_id,
                      Course.end_reason).where(Course.id.in_(course_ids))
    return [dict(row) for row in (await db.execute(query)).mappings().all()]


async def record_attendance(db: AsyncConnection, session_rows: list[dict[str, Any]],
                            course_changes: dict[str, dict[str, Any]]) -> None:
    """Every member's session of a group session, and their courses' counters: two statements, whatever the count."""
    await db.execute(sa.insert(TherapySession), [new_row(TherapySession, row) for row in session_rows])
    names = sorted({name for changes in course_changes.values() for name in changes})
    values = {name: sa.case({course_id: sa.literal(changes[name], Course.__table__.c[name].type)
                             for course_id, changes in course_changes.items()}, value=Course.id)
              for name in names}
    await db.execute(sa.update(Course).where(Course.id.in_(list(course_changes)))
                     .values(values | {"version": Course.version + 1, "updated_at": utcnow()}))


async def attendance_counts(db: AsyncConnection, group_id: str) -> dict[str, tuple[int, int]]:
    """Per member course: group sessions attended, and group sessions recorded for it."""
    attended = sa.func.sum(sa.case((TherapySession.attendance == "attended", 1), else_=0))
    query = (sa.select(TherapySession.course_id, attended, sa.func.count())
             .join(GroupSession, GroupSession.id == TherapySession.group_session_id)
             .where(GroupSession.group_id == group_id).group_by(TherapySession.course_id))
    return {course_id: (int(a or 0), int(n)) for course_id, a, n in (await db.execute(query)).all()}
