"""The session contract (rules.md S1-S9): how many sessions, when, in which phase, by whose leave.

Precedence when several rules refuse one session (`check_session`): S6 (closed course) first,
since nothing can be recorded on it whatever else is wrong; then the attendance value (422);
then S7 (a misdated session is a data error of any attendance); then, for attended sessions
only, S3 before S4 before S5. S3 wins because only an extension can cure it, while S4 and S5
(which never both apply: they belong to different phases) are cured by a phase change that
would still leave S3 standing.
"""

from datetime import date

from app.rules.errors import RuleViolation
from app.rules.protocols import ATTENDANCE, get_protocol
from app.rules.snapshot import CourseSnapshot


def check_planned_sessions(protocol: str, planned: int, attended: int = 0) -> None:
    """S1/S2: planned sessions stay in the protocol's range and never below those already held."""
    spec = get_protocol(protocol)
    context = {"min": spec.planned_min, "max": spec.planned_max, "attended": attended}
    if not spec.planned_min <= planned <= spec.planned_max:
        raise RuleViolation(
            "S1",
            "planned_sessions_out_of_range",
            f"The {spec.name} protocol plans between {spec.planned_min} and "
            f"{spec.planned_max} sessions.",
            status=422,
            context=context,
        )
    if planned < attended:
        raise RuleViolation(
            "S2",
            "planned_sessions_out_of_range",
            f"Planned sessions cannot be fewer than the {attended} sessions already attended.",
            status=422,
            context=context,
        )


def check_course_open(course: CourseSnapshot) -> None:
    """S6: a completed or discontinued course is a closed clinical record and is not changed."""
    if not course.is_open:
        raise RuleViolation(
            "S6",
            "course_closed",
            f"The course is {course.phase} and can no longer be changed.",
            context={"phase": course.phase},
        )


def check_session(
    course: CourseSnapshot, attendance: str, held_on: date, today: date
) -> int | None:
    """S3-S7: refuse a session the contract forbids; return its number if attended, else None."""
    check_course_open(course)
    if attendance not in ATTENDANCE:
        # Filed under S3, the first rule that the attendance value switches on or off.
        raise RuleViolation(
            "S3",
            "validation_error",
            "Attendance must be attended, missed or cancelled.",
            status=422,
            context={"allowed": list(ATTENDANCE)},
        )
    _check_in_order(course, held_on, today)
    if attendance != "attended":
        return None
    number = course.attended + 1
    _check_within_limit(course, number)
    _check_initial_not_overrun(course, number)
    _check_termination_reached(course, number)
    return number


def _check_in_order(course: CourseSnapshot, held_on: date, today: date) -> None:
    """S7: sessions are dated within the course, not in the future, and recorded in date order."""
    if held_on < course.started_on:
        message = "A session cannot be dated before the course started."
    elif held_on > today:
        message = "A session cannot be dated in the future."
    elif course.latest_session_on is not None and held_on < course.latest_session_on:
        message = "A session cannot be dated before the latest recorded session."
    else:
        return
    latest = course.latest_session_on
    raise RuleViolation(
        "S7",
        "session_out_of_order",
        message,
        context={
            "held_on": held_on.isoformat(),
            "started_on": course.started_on.isoformat(),
            "today": today.isoformat(),
            "latest_session_on": latest.isoformat() if latest else None,
        },
    )


def _check_within_limit(course: CourseSnapshot, number: int) -> None:
    """S3: IPT is time-limited; no attended session beyond the contract (planned + extensions)."""
    if number > course.limit:
        raise RuleViolation(
            "S3",
            "session_limit_reached",
            f"All {course.limit} contracted sessions have been held; "
            "a supervisor must approve an extension for more.",
            context={"limit": course.limit, "current": course.attended},
        )


def _check_initial_not_overrun(course: CourseSnapshot, number: int) -> None:
    """S4: the initial phase is short; after initial_max sessions the focus must be agreed."""
    limit = course.protocol_spec.initial_max
    if course.phase == "initial" and number > limit:
        raise RuleViolation(
            "S4",
            "initial_phase_overrun",
            f"The initial phase allows at most {limit} sessions; "
            "agree the formulation and move to the middle phase.",
            context={"limit": limit, "current": course.attended},
        )


def _check_termination_reached(course: CourseSnapshot, number: int) -> None:
    """S5: the last termination_min contracted sessions belong to a planned ending."""
    limit = course.limit - course.protocol_spec.termination_min
    if course.phase == "middle" and number > limit:
        raise RuleViolation(
            "S5",
            "termination_phase_required",
            f"The last {course.protocol_spec.termination_min} of the {course.limit} sessions "
            "must be held in the termination phase; move the course to termination first.",
            context={"limit": limit, "current": course.attended},
        )


def check_new_course(patient_has_open_course: bool) -> None:
    """S8: one open course per patient, so there is one contract and one focus at a time."""
    if patient_has_open_course:
        raise RuleViolation(
            "S8",
            "active_course_exists",
            "The patient already has an open course; complete or discontinue it first.",
        )


def check_extension(course: CourseSnapshot, sessions: int, by_supervisor: bool) -> None:
    """S9: a contract grows only by a supervisor's recorded extension, within extension_max.

    Order: 403 (no supervisor rights; the caller learns nothing more), course_closed,
    422 (sessions < 1), then extension_limit_reached.
    """
    if not by_supervisor:
        raise RuleViolation(
            "S9", "forbidden", "Only a supervisor can approve an extension.", status=403
        )
    if not course.is_open:
        raise RuleViolation(
            "S9",
            "course_closed",
            f"The course is {course.phase}; a closed course cannot be extended.",
            context={"phase": course.phase},
        )
    if sessions < 1:
        raise RuleViolation(
            "S9",
            "validation_error",
            "An extension must add at least one session.",
            status=422,
            context={"min": 1},
        )
    maximum = course.protocol_spec.extension_max
    if course.extension_sessions + sessions > maximum:
        raise RuleViolation(
            "S9",
            "extension_limit_reached",
            f"The {course.protocol_spec.name} protocol allows at most {maximum} extension "
            f"sessions in total; {course.extension_sessions} are already approved.",
            context={
                "limit": maximum,
                "current": course.extension_sessions,
                "requested": sessions,
            },
        )


def check_session_deletable(is_latest: bool, held_in_current_phase: bool = True) -> None:
    """S7: only the latest session, and only one held in the current phase, may be deleted.

    Deleting an earlier session would leave a gap in the numbering; deleting the last session of
    a phase the course has already left would undo, after the fact, the session that allowed the
    course to leave it (P4-P6). Refused as rule "S7", code `session_out_of_order`. The caller
    checks S6 (check_course_open) first: sessions of a closed course are not deleted either.
    """
    if not is_latest:
        raise RuleViolation(
            "S7",
            "session_out_of_order",
            "Only the most recent session can be deleted.",
        )
    if not held_in_current_phase:
        raise RuleViolation(
            "S7",
            "session_out_of_order",
            "A session held in an earlier phase cannot be deleted once the course has moved on.",
        )
