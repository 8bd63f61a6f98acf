"""Recording sessions: numbering, phase stamping and the contract, under the course's row lock."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app import rules
from app.core.errors import PreconditionFailed
from app.core.ids import today
from app.courses import repository as courses
from app.courses import service as course_service
from app.deps import Principal
from app.measures import service as measures
from app.rules import groups as group_rules
from app.sessions import repository
from app.webhooks import outbox


async def record(db: AsyncConnection, principal: Principal, course_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Record a session (S3-S7): attended ones take the next number; all take the current phase."""
    course = await courses.get(db, principal, course_id, lock=True)
    group_rules.check_individual_change(course["protocol"])  # G9: a member's sessions are the group's
    number = rules.check_session(course_service.snapshot(course), data["attendance"], data["held_on"], today())
    session = await repository.insert(db, {
        **data, "organization_id": principal.organization_id, "course_id": course_id,
        "number": number, "phase": course["phase"],
    })
    changes: dict[str, Any] = {"latest_session_on": data["held_on"]}
    if number is not None:
        changes |= {"sessions_attended": number, "attended_in_phase": course["attended_in_phase"] + 1}
        if number == 1:
            changes["first_attended_on"] = data["held_on"]
        if course["last_measure_on"] is not None and course["last_measure_on"] >= data["held_on"]:
            # Measures dated on or after this session now count it on their session axis.
            changes |= await measures.facts_after_sessions_changed(db, course_id)
    await courses.save(db, course_id, changes)
    await outbox.emit(db, principal.organization_id, "session.recorded", {
        "course_id": course_id, "patient_id": course["patient_id"], "session_id": session["id"],
        "number": number, "attendance": data["attendance"], "phase": course["phase"],
        "held_on": data["held_on"].isoformat()})
    return session


async def update(
    db: AsyncConnection, principal: Principal, course_id: str, session_id: str, version: int, changes: dict
) -> dict[str, Any]:
    """Edit a session's details on an open course (S6); date and attendance stay as recorded."""
    await course_service.get_open_for_change(db, principal, course_id)
    return await repository.update(db, course_id, session_id, version, changes)


async def delete(db: AsyncConnection, principal: Principal, course_id: str, session_id: str, version: int) -> None:
    """Delete the most recent session only (S6, S7), giving back its number and counters."""
    course = await course_service.get_open_for_change(db, principal, course_id)
    session = await repository.get(db, course_id, session_id)
    latest = await repository.latest_two(db, course_id)
    rules.check_session_deletable(latest[0]["id"] == session_id, session["phase"] == course["phase"])
    if session["version"] != version:
        raise PreconditionFailed("The session changed since you read it; read it again and retry.")
    await repository.delete(db, session_id)
    changes: dict[str, Any] = {"latest_session_on": latest[1]["held_on"] if len(latest) > 1 else None}
    if session["number"] is not None:
        changes["sessions_attended"] = course["sessions_attended"] - 1
        if session["phase"] == course["phase"]:
            changes["attended_in_phase"] = course["attended_in_phase"] - 1
        if session["number"] == 1:
            changes["first_attended_on"] = None
        if course["first_measure_on"] is not None:
            # Its measures were unlinked (ON DELETE SET NULL); the session axis loses this session.
            changes |= await measures.facts_after_sessions_changed(db, course_id)
    await courses.save(db, course_id, changes)
