"""Every query on groups, facilitators, members and group sessions, each filtered by organization and reach.

Reach: supervisors and integrations reach every group of the organization; a clinician the groups
they facilitate. Anything else, another organization's included, is a 404.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import NotFound
from app.core.fastsql import Statement, insert_row
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


def facilitated(column: Any, me: Any) -> sa.Select:
    """``column`` (a member's course_id or patient_id) of every active member of the groups ``me`` facilitates."""
    return (sa.select(column).join(GroupFacilitator, GroupFacilitator.group_id == GroupMember.group_id)
            .where(GroupFacilitator.user_id == me, GroupMember.status == "active"))


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


# recording a group session: a fixed number of statements, compiled once ---------------------------
def _state_statement(whole_organization: bool) -> Statement:
    """The group (its row locked) with each active member and their course's counters, in one read."""
    query = (sa.select(*_group, GroupMember.id.label("m_id"), GroupMember.course_id.label("m_course_id"),
                       GroupMember.pre_group_meetings.label("m_pre_group"), Course.phase.label("c_phase"),
                       Course.sessions_attended.label("c_attended"), Course.attended_in_phase.label("c_in_phase"),
                       Course.first_attended_on.label("c_first_on"))
             .select_from(IptGroup)
             .outerjoin(GroupMember, sa.and_(GroupMember.group_id == IptGroup.id, GroupMember.status == "active"))
             .outerjoin(Course, Course.id == GroupMember.course_id)
             .where(IptGroup.id == sa.bindparam("group_id"), IptGroup.organization_id == sa.bindparam("org")))
    if not whole_organization:
        mine = sa.select(GroupFacilitator.group_id).where(GroupFacilitator.user_id == sa.bindparam("me"))
        query = query.where(IptGroup.id.in_(mine))
    return Statement(query.order_by(GroupMember.id).with_for_update(of=IptGroup))


_STATE = {whole: _state_statement(whole) for whole in (True, False)}


async def session_state(db: AsyncConnection, principal: Principal, group_id: str) -> tuple[dict, list[dict]]:
    """The group in reach, locked, and its active members with their courses' counters; 404 outside reach."""
    rows = await _STATE[principal.sees_whole_organization].mappings(
        db, {"group_id": group_id, "org": principal.organization_id, "me": principal.id})
    if not rows:
        raise NotFound("No such group.")
    group = {name: rows[0][name] for name in GROUP_COLUMNS}
    members = [{"id": r["m_id"], "course_id": r["m_course_id"], "pre_group_meetings": r["m_pre_group"],
                "phase": r["c_phase"], "sessions_attended": r["c_attended"], "attended_in_phase": r["c_in_phase"],
                "first_attended_on": r["c_first_on"]} for r in rows if r["m_id"] is not None]
    return group | {"members": len(members)}, members


_INSERT_GROUP_SESSION = insert_row(GroupSession)
_ADVANCE = Statement(sa.update(IptGroup).where(IptGroup.id == sa.bindparam("b_id")).values(
    sessions_held=sa.bindparam("v_held"), latest_session_on=sa.bindparam("v_on"), status=sa.bindparam("v_status"),
    version=IptGroup.version + 1, updated_at=sa.bindparam("v_now")))
_TEXT, _INT, _DATE = postgresql.ARRAY(sa.String), postgresql.ARRAY(sa.Integer), postgresql.ARRAY(sa.Date)
# PostgreSQL: every member's session in one INSERT, and every member's course in one UPDATE, from arrays.
_INSERT_MEMBER_SESSIONS = Statement(sa.text(
    "INSERT INTO therapy_session (id, organization_id, course_id, number, held_on, attendance, modality, "
    "duration_minutes, problem_areas_addressed, note, phase, group_session_id, version, created_at, updated_at) "
    "SELECT u.id, :org, u.course_id, u.number, :held_on, u.attendance, 'in_person', :duration, '[]', NULL, :phase, "
    ":session, 1, :now, :now FROM unnest(:ids, :course_ids, :numbers, :attendances) AS u(id, course_id, number, attendance)"
).bindparams(sa.bindparam("ids", type_=_TEXT), sa.bindparam("course_ids", type_=_TEXT),
             sa.bindparam("numbers", type_=_INT), sa.bindparam("attendances", type_=_TEXT),
             sa.bindparam("held_on", type_=sa.Date), sa.bindparam("duration", type_=sa.Integer),
             sa.bindparam("now", type_=sa.DateTime(timezone=True))))
_UPDATE_MEMBER_COURSES = Statement(sa.text(
    "UPDATE course SET phase = :phase, sessions_attended = u.attended, attended_in_phase = u.in_phase, "
    "first_attended_on = u.first_on, latest_session_on = :held_on, ended_on = :ended_on, end_reason = :end_reason, "
    "version = course.version + 1, updated_at = :now "
    "FROM unnest(:ids, :attended, :in_phase, :first_on) AS u(id, attended, in_phase, first_on) WHERE course.id = u.id"
).bindparams(sa.bindparam("ids", type_=_TEXT), sa.bindparam("attended", type_=_INT), sa.bindparam("in_phase", type_=_INT),
             sa.bindparam("first_on", type_=_DATE), sa.bindparam("held_on", type_=sa.Date),
             sa.bindparam("ended_on", type_=sa.Date), sa.bindparam("now", type_=sa.DateTime(timezone=True))))


async def write_session(db: AsyncConnection, session: dict[str, Any], member_rows: list[dict[str, Any]],
                        course: dict[str, Any], group: dict[str, Any]) -> None:
    """The group session, every member's session of their course, their courses' counters and the group's:
    the same statements whatever the member count (``member_rows``: id, course_id, number, attendance, in_phase,
    first_on; ``course``: phase, held_on, ended_on, end_reason; ``group``: held, status)."""
    now = utcnow()
    await _INSERT_GROUP_SESSION.later(db, session)
    if member_rows and db.dialect.name == "postgresql":
        column = lambda name: [row[name] for row in member_rows]
        await _INSERT_MEMBER_SESSIONS.later(db, {
            "org": session["organization_id"], "held_on": session["held_on"], "duration": session["duration_minutes"],
            "phase": session["phase"], "session": session["id"], "now": now, "ids": column("id"),
            "course_ids": column("course_id"), "numbers": column("number"), "attendances": column("attendance")})
        await _UPDATE_MEMBER_COURSES.later(db, {
            "phase": course["phase"], "held_on": session["held_on"], "ended_on": course["ended_on"],
            "end_reason": course["end_reason"], "now": now, "ids": column("course_id"),
            "attended": column("count"), "in_phase": column("in_phase"),
            "first_on": column("first_on")})
    elif member_rows:
        sessions = [{"id": row["id"], "organization_id": session["organization_id"], "course_id": row["course_id"],
                     "number": row["number"], "held_on": session["held_on"], "attendance": row["attendance"],
                     "modality": "in_person", "duration_minutes": session["duration_minutes"], "phase": session["phase"],
                     "group_session_id": session["id"]} for row in member_rows]
        changes = {row["course_id"]: {"phase": course["phase"], "sessions_attended": row["count"],
                                      "latest_session_on": session["held_on"], "attended_in_phase": row["in_phase"],
                                      "first_attended_on": row["first_on"], "ended_on": course["ended_on"],
                                      "end_reason": course["end_reason"]} for row in member_rows}
        await record_attendance(db, sessions, changes)
    await _ADVANCE.later(db, {"b_id": group["id"], "v_held": group["held"], "v_on": session["held_on"],
                              "v_status": group["status"], "v_now": now})
