"""Course use cases: load a snapshot under lock, ask the rules, write only what they allow."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app import rules
from app.core.errors import Forbidden, PreconditionFailed, Unprocessable
from app.core.ids import today
from app.courses import repository
from app.deps import Principal
from app.identity import repository as identity
from app.patients import repository as patients
from app.rules import groups as group_rules
from app.webhooks import outbox

HIDDEN = ("organization_id", "attended_in_phase", "latest_session_on", "first_measure_on", "last_measure_on",
          "last_measure_session_number", "first_attended_on")
SHOWN = tuple(name for name in repository.COURSE_COLUMNS if name not in HIDDEN)


# The row's values for the snapshot (in CourseSnapshot's field order, up to formulation) and for
# the measure facts, each group read in one C call: every course of a list page comes here.
_snapshot_values = itemgetter("protocol", "phase", "planned_sessions", "extension_sessions", "started_on",
                              "sessions_attended", "attended_in_phase", "latest_session_on")
_fact_values = itemgetter("first_measure_on", "first_attended_on", "last_measure_session_number", "risk_flag_open")
# Both snapshots are built in field order by tuple.__new__, as NamedTuple._make does, skipping the
# generated __new__ with its keyword handling: a third less per course.
_new_tuple = tuple.__new__


def snapshot(course: Mapping[str, Any], formulation: Any = None, inventory_count: int = 0) -> rules.CourseSnapshot:
    """The frozen view of a course row that the rules read."""
    formulation_snapshot = None
    if formulation is not None:
        areas = tuple(
            rules.ProblemAreaSnapshot(a.get("area", ""), bool(a.get("focal")), bool(a.get("primary")))
            for a in formulation.problem_areas
        )
        formulation_snapshot = rules.FormulationSnapshot(formulation.status, areas)
    return _new_tuple(rules.CourseSnapshot, (*_snapshot_values(course), formulation_snapshot, inventory_count))


def measure_facts(course: Mapping[str, Any]) -> rules.MeasureFacts:
    """The measure facts the advisories need, from the columns the measures service keeps on the course row."""
    first_measure, first_attended, last_session_number, risk_flag_open = _fact_values(course)
    has_baseline = first_measure is not None and (first_attended is None or first_measure <= first_attended)
    return _new_tuple(rules.MeasureFacts, (last_session_number, has_baseline, bool(risk_flag_open)))


def present(course: Mapping[str, Any], measures: rules.MeasureFacts | None = None, on: date | None = None) -> dict[str, Any]:
    """A course as the API shows it (on ``on``, default today): contract arithmetic and advisories added, internals dropped."""
    snap = snapshot(course)
    out = {name: course[name] for name in SHOWN}
    out["session_limit"] = snap.limit
    out["sessions_remaining"] = snap.remaining
    out["advisories"] = [a.as_dict() for a in rules.advisories(snap, on or today(), measures or measure_facts(course))]
    return out


def present_page(courses: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``present`` for the courses of a list page, all on the same date."""
    on = today()
    return [present(course, on=on) for course in courses]


def check_version(course: dict[str, Any], expected: int | None) -> None:
    """An optional If-Match on a POST that changes the course: 412 when stale."""
    if expected is not None and expected != course["version"]:
        raise PreconditionFailed("The course changed since you read it; read it again and retry.")


async def _require_therapist(db: AsyncConnection, principal: Principal, therapist_id: str) -> None:
    if not principal.sees_whole_organization and therapist_id != principal.id:
        raise Forbidden("A clinician can only open or take over courses they treat themselves.")
    if not await identity.user_is_clinician(db, principal.organization_id, therapist_id):
        raise Unprocessable("therapist_id must name an active clinician of the organization.",
                            errors=[{"loc": ["therapist_id"], "message": "not an active clinician"}])


async def create(db: AsyncConnection, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Open a course for a patient in reach (S1, S8); a group protocol's course is opened by joining a group (G9)."""
    group_rules.check_individual_change(data["protocol"])
    await patients.get(db, principal, data["patient_id"], lock=True)
    therapist_id = data.get("therapist_id") or (principal.id if principal.kind == "user" else None)
    if therapist_id is None:
        raise Unprocessable("therapist_id is required.", errors=[{"loc": ["therapist_id"], "message": "required"}])
    await _require_therapist(db, principal, therapist_id)
    protocol = rules.get_protocol(data["protocol"])
    planned = protocol.default_planned if data.get("planned_sessions") is None else data["planned_sessions"]
    rules.check_planned_sessions(protocol.id, planned)
    rules.check_new_course(await repository.patient_has_open_course(db, data["patient_id"]))
    values = {
        "organization_id": principal.organization_id,
        "patient_id": data["patient_id"],
        "therapist_id": therapist_id,
        "protocol": protocol.id,
        "planned_sessions": planned,
        "started_on": data.get("started_on") or today(),
        "diagnosis": data.get("diagnosis"),
    }
    course = await repository.insert(db, values)
    await outbox.emit(db, principal.organization_id, "course.created", {
        "course_id": course["id"], "patient_id": course["patient_id"], "therapist_id": therapist_id,
        "protocol": protocol.id, "phase": course["phase"], "planned_sessions": planned})
    return course


async def update(db: AsyncConnection, principal: Principal, course_id: str, version: int, changes: dict) -> dict:
    """Change planned sessions (S1, S2), therapist or diagnosis of an open course."""
    course = await repository.get(db, principal, course_id, lock=True)
    check_version(course, version)
    snap = snapshot(course)
    rules.check_course_open(snap)
    if "planned_sessions" in changes:
        rules.check_planned_sessions(course["protocol"], changes["planned_sessions"], course["sessions_attended"])
    if "therapist_id" in changes:
        await _require_therapist(db, principal, changes["therapist_id"])
    return await repository.save(db, course_id, changes)


async def transition(
    db: AsyncConnection, principal: Principal, course_id: str, data: dict[str, Any], version: int | None
) -> dict[str, Any]:
    """Move a course to its next phase (P1-P7), recording who did it and when."""
    course = await repository.get(db, principal, course_id, lock=True)
    check_version(course, version)
    group_rules.check_individual_change(course["protocol"])  # G9: its group moves it
    formulation, inventory_count = await repository.formulation_and_inventory(db, course_id)
    rules.check_transition(snapshot(course, formulation, inventory_count), data["to"], data.get("reason"))
    changes: dict[str, Any] = {"phase": data["to"], "attended_in_phase": 0}
    if data["to"] in rules.CLOSED_PHASES:
        changes["ended_on"] = today()
        changes["end_reason"] = data.get("reason") if data["to"] == "discontinued" else "completed"
    await repository.add_transition(db, {
        "organization_id": principal.organization_id, "course_id": course_id, "from_phase": course["phase"],
        "to_phase": data["to"], "reason": changes.get("end_reason") if data["to"] == "discontinued" else None,
        "note": data.get("note"), "by_type": principal.kind, "by_id": principal.id,
    })
    updated = await repository.save(db, course_id, changes)
    facts = {"course_id": course_id, "patient_id": course["patient_id"], "from_phase": course["phase"], "to_phase": data["to"]}
    await outbox.emit(db, principal.organization_id, "course.phase_changed", facts)
    if data["to"] in rules.CLOSED_PHASES:
        await outbox.emit(db, principal.organization_id, "course.closed", facts | {
            "end_reason": updated["end_reason"], "sessions_attended": updated["sessions_attended"]})
    return updated


async def extend(
    db: AsyncConnection, principal: Principal, course_id: str, data: dict[str, Any], version: int | None
) -> dict[str, Any]:
    """Approve more sessions (S9): supervisors and integrations only, within the protocol's cap."""
    course = await repository.get(db, principal, course_id, lock=True)
    check_version(course, version)
    rules.check_extension(snapshot(course), data["sessions"], principal.sees_whole_organization)
    await repository.add_extension(db, {
        "organization_id": principal.organization_id, "course_id": course_id, "sessions": data["sessions"],
        "reason": data["reason"], "by_type": principal.kind, "by_id": principal.id,
    })
    return await repository.save(db, course_id, {"extension_sessions": course["extension_sessions"] + data["sessions"]})


async def get_open_for_change(db: AsyncConnection, principal: Principal, course_id: str) -> dict[str, Any]:
    """A course in reach, locked, that must still be open (S6) for the change about to be made."""
    course = await repository.get(db, principal, course_id, lock=True)
    rules.check_course_open(snapshot(course))
    return course

