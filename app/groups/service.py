"""Group IPT use cases: open a group, members join (each with a course of their own) and leave, pre-group
meetings, and group sessions recorded once, under the group's row lock, through the rules G1-G9.

A member's course is an ordinary course in the group protocol, its therapist the lead facilitator:
each group session adds a session of the member's own course (attended or missed, numbered as
any other, stamped with the group's phase), so the member's timeline, measures, outcomes, chart,
FHIR and research rows keep working. The group's phase is its sessions': pre_group until session 1,
then initial, middle and termination as the protocol numbers them (app.rules.groups).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import NotFound, PreconditionFailed, Unprocessable
from app.core.ids import new_id, today, utcnow
from app.courses import repository as courses
from app.deps import Principal
from app.groups import repository
from app.identity import repository as identity
from app.measures import repository as measures_repository
from app.measures import service as measures_service
from app.patients import repository as patients
from app.rules import groups as rules
from app.rules.sessions import check_new_course
from app.webhooks import outbox


def snapshot(group: dict[str, Any]) -> rules.GroupSnapshot:
    """What the group rules read."""
    return rules.GroupSnapshot(group["protocol"], group["planned_sessions"], group["capacity"], group["members"],
                               group["sessions_held"], group["latest_session_on"], group["status"] == "open")


def present(group: dict[str, Any]) -> dict[str, Any]:
    """A group as the API returns it, with the phase its sessions put it in."""
    spec = rules.get_group_protocol(group["protocol"])
    held = group["sessions_held"]
    phase = ("completed" if group["status"] == "completed" else "pre_group" if held == 0
             else spec.phase_of(held, group["planned_sessions"]))
    return group | {"phase": phase}


async def _check_facilitators(db: AsyncConnection, organization_id: str, facilitator_ids: list[str]) -> None:
    rules.check_facilitators({user_id: await identity.user_is_clinician(db, organization_id, user_id)
                              for user_id in facilitator_ids})


def _check_version(group: dict[str, Any], version: int | None) -> None:
    if version is not None and group["version"] != version:
        raise PreconditionFailed("The group changed since you read it; read it again and retry.")


async def create(db: AsyncConnection, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Open a group (G2, G4, G7); without facilitators named, the caller facilitates."""
    if not data.get("facilitator_ids"):
        if principal.kind != "user":
            raise Unprocessable("facilitator_ids is required.", errors=[{"loc": ["facilitator_ids"], "message": "required"}])
        data = {**data, "facilitator_ids": [principal.id]}
    spec = rules.get_group_protocol(data["protocol"])
    planned = data.get("planned_sessions") or spec.default_planned
    rules.check_group_plan(spec.id, planned, data["capacity"])
    await _check_facilitators(db, principal.organization_id, data["facilitator_ids"])
    group = await repository.insert(db, {"organization_id": principal.organization_id, "name": data["name"],
                                         "protocol": spec.id, "planned_sessions": planned,
                                         "capacity": data["capacity"]}, data["facilitator_ids"])
    return present(group | {"facilitator_ids": data["facilitator_ids"], "members": 0})


async def get(db: AsyncConnection, principal: Principal, group_id: str) -> dict[str, Any]:
    """One group in reach."""
    return present(await repository.get(db, principal, group_id))


async def update(db: AsyncConnection, principal: Principal, group_id: str, version: int, changes: dict) -> dict:
    """Rename a group, change its plan or capacity (never below what it has), or its facilitators."""
    group = await repository.get(db, principal, group_id, lock=True)
    _check_version(group, version)
    rules.check_group_plan(group["protocol"], changes.get("planned_sessions", group["planned_sessions"]),
                           changes.get("capacity", group["capacity"]), group["sessions_held"], group["members"])
    facilitators = changes.pop("facilitator_ids", None)
    if facilitators is not None:
        await _check_facilitators(db, principal.organization_id, facilitators)
        await repository.set_facilitators(db, group_id, facilitators)
    # The members' courses follow the group: its lead facilitator is their therapist, its plan their contract.
    follow = {"therapist_id": facilitators[0]} if facilitators and facilitators[0] != group["facilitator_ids"][0] else {}
    if changes.get("planned_sessions", group["planned_sessions"]) != group["planned_sessions"]:
        follow["planned_sessions"] = changes["planned_sessions"]
    if follow:
        for member in await repository.members(db, group_id, active_only=True):
            await courses.save(db, member["course_id"], follow)
    saved = await repository.save(db, group_id, version, changes)
    return present(saved | {"facilitator_ids": facilitators or group["facilitator_ids"], "members": group["members"]})


async def join(db: AsyncConnection, principal: Principal, group_id: str, patient_id: str) -> dict[str, Any]:
    """A patient in reach joins the group (G1, G2) with a course of their own in its protocol (S8)."""
    group = await repository.get(db, principal, group_id, lock=True)
    rules.check_join(snapshot(group))
    await patients.get(db, principal, patient_id, lock=True)
    check_new_course(await courses.patient_has_open_course(db, patient_id))  # S8: one open course a patient
    course = await courses.insert(db, {
        "organization_id": principal.organization_id, "patient_id": patient_id,
        "therapist_id": group["facilitator_ids"][0], "protocol": group["protocol"],
        "planned_sessions": group["planned_sessions"], "started_on": today()})
    member = await repository.insert_member(db, {"organization_id": principal.organization_id, "group_id": group_id,
                                                 "patient_id": patient_id, "course_id": course["id"]})
    await repository.advance(db, group_id, {})
    await outbox.emit(db, principal.organization_id, "group.member_joined", {
        "group_id": group_id, "member_id": member["id"], "patient_id": patient_id, "course_id": course["id"]})
    return member


async def leave(db: AsyncConnection, principal: Principal, group_id: str, member_id: str, reason: str) -> dict:
    """A member leaves: their course is discontinued with the reason; the others go on untouched."""
    group = await repository.get(db, principal, group_id, lock=True)
    member = await repository.member(db, group_id, member_id)
    if member["status"] != "active":
        raise Unprocessable("The member has already left the group.", code="member_left")
    left = await repository.save_member(db, member_id, {"status": "left", "left_on": today(), "left_reason": reason})
    [course] = await repository.member_courses(db, [member["course_id"]])
    await courses.add_transition(db, {
        "organization_id": principal.organization_id, "course_id": member["course_id"],
        "from_phase": course["phase"], "to_phase": "discontinued", "reason": reason,
        "note": None, "by_type": principal.kind, "by_id": principal.id})
    await courses.save(db, member["course_id"], {"phase": "discontinued", "ended_on": today(), "end_reason": reason,
                                                 "attended_in_phase": 0})
    await repository.advance(db, group["id"], {})
    await outbox.emit(db, principal.organization_id, "group.member_left", {
        "group_id": group_id, "member_id": member_id, "course_id": member["course_id"], "reason": reason})
    return left


async def pre_group_meeting(db: AsyncConnection, principal: Principal, group_id: str, member_id: str,
                            held_on: date) -> dict[str, Any]:
    """Record a member's next pre-group meeting (G8)."""
    group = await repository.get(db, principal, group_id, lock=True)
    member = await repository.member(db, group_id, member_id)
    if member["status"] != "active":
        raise Unprocessable("The member has left the group.", code="member_left")
    number = rules.check_pre_group_meeting(snapshot(group), member["pre_group_meetings"])
    return await repository.save_member(db, member_id, {"pre_group_meetings": number, "last_pre_group_on": held_on})


async def record_session(db: AsyncConnection, principal: Principal, group_id: str, data: dict[str, Any]) -> dict:
    """Record a group session once (G3, G4, G5): a session of every active member's own course, attended or
    missed, stamped with the group's phase; a fixed number of statements whatever the members."""
    group, active = await repository.session_state(db, principal, group_id)
    marked = {entry["member_id"]: entry["attendance"] for entry in data["attendance"]}
    if set(marked) - {member["id"] for member in active}:  # a body reference to no one here: a 404
        raise NotFound("attendance names someone who is not an active member of this group.")
    present_pre_group = {m["id"]: m["pre_group_meetings"] for m in active if marked.get(m["id"]) == "attended"}
    number, phase = rules.check_group_session(snapshot(group), data["held_on"], present_pre_group)
    last = number == group["planned_sessions"]  # the group ends with it, and its members' courses complete
    session = {"id": new_id(), "organization_id": principal.organization_id, "group_id": group_id, "number": number,
               "held_on": data["held_on"], "phase": phase, "duration_minutes": data.get("duration_minutes"),
               "recorded_by": principal.id, "created_at": utcnow()}
    member_rows, attendance = [], []
    for member in active:
        attended = marked.get(member["id"]) == "attended"
        count = member["sessions_attended"] + (1 if attended else 0)
        in_phase = (member["attended_in_phase"] if member["phase"] == phase else 0) + (1 if attended else 0)
        member_rows.append({"id": new_id(), "course_id": member["course_id"], "number": count if attended else None,
                            "count": count, "attendance": "attended" if attended else "missed", "in_phase": in_phase,
                            "first_on": member["first_attended_on"] or (data["held_on"] if attended else None)})
        attendance.append({"member_id": member["id"], "attendance": "attended" if attended else "missed"})
    course = {"phase": "completed" if last else phase, "ended_on": data["held_on"] if last else None,
              "end_reason": "completed" if last else None}
    await repository.write_session(db, session, member_rows, course,
                                   {"id": group_id, "held": number, "status": "completed" if last else "open"})
    await outbox.emit(db, principal.organization_id, "group.session_recorded", {
        "group_id": group_id, "group_session_id": session["id"], "number": number, "phase": phase,
        "held_on": data["held_on"].isoformat(), "attended": sum(1 for a in attendance if a["attendance"] == "attended"),
        "members": len(attendance)})
    return {name: session[name] for name in repository.SESSION_PUBLIC} | {"attendance": attendance}

def _rate(values: list[bool | None]) -> float | None:
    """The share of True among the members an outcome applies to (None: it applies to none)."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


async def outcomes(db: AsyncConnection, principal: Principal, group_id: str, pseudonym: Any) -> dict[str, Any]:
    """The group's outcomes: each member's (by pseudonym to a caller who cannot read the member's course), and
    the group's counts: members, completers, leavers, attendance rate, and response and remission rates per
    instrument by the same definitions as a course's outcomes (domain.md)."""
    group = await repository.get(db, principal, group_id)
    members = await repository.members(db, group_id)
    course_rows = {c["id"]: c for c in await repository.member_courses(db, [m["course_id"] for m in members])}
    held = await repository.attendance_counts(db, group_id)
    points: dict[str, list] = {}
    for row in await measures_repository.points_of_courses(db, [m["course_id"] for m in members]):
        points.setdefault(row["course_id"], []).append(row)
    per_member, by_instrument = [], {}
    for member in members:
        course = course_rows[member["course_id"]]
        # As courses.repository.get reaches them: the whole organization, the therapist (the lead), or a
        # facilitator while the member is in the group; a co-facilitator sees a member who left by pseudonym.
        readable = (principal.sees_whole_organization or course["therapist_id"] == principal.id
                    or (principal.id in group["facilitator_ids"] and member["status"] == "active"))
        found = measures_service.course_outcomes(measures_service.points_by_instrument(points.get(member["course_id"], [])))
        for outcome in found:
            by_instrument.setdefault(outcome["instrument"], []).append(outcome)
        attended, recorded = held.get(member["course_id"], (0, 0))
        identity_fields = ({"member_id": member["id"], "patient_id": member["patient_id"], "course_id": member["course_id"]}
                           if readable else {"member": pseudonym(member["id"])})
        per_member.append(identity_fields | {
            "status": member["status"], "completed": course["end_reason"] == "completed",
            "sessions_attended": attended, "group_sessions": recorded,
            "outcomes": [{k: o[k] for k in ("instrument", "baseline", "latest", "change", "response", "remission")}
                         for o in found]})
    attended_total = sum(a for a, _ in held.values())
    recorded_total = sum(r for _, r in held.values())
    return {
        "group_id": group_id, "protocol": group["protocol"], "sessions_held": group["sessions_held"],
        "members": len(members), "active": sum(m["status"] == "active" for m in members),
        "left": sum(m["status"] == "left" for m in members),
        "completers": sum(course_rows[m["course_id"]]["end_reason"] == "completed" for m in members),
        "attendance_rate": round(attended_total / recorded_total, 4) if recorded_total else None,
        "instruments": [{"instrument": name, "members_measured": len(found),
                         "response_rate": _rate([o["response"] for o in found]),
                         "remission_rate": _rate([o["remission"] for o in found])}
                        for name, found in by_instrument.items()],
        "per_member": per_member,
    }
