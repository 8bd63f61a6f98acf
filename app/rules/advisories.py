"""Advisories (rules.md): hints a course carries for the clinician's screen; never refusals.

They are returned in the order of rules.md's table. The phase advisories only arise in their
phase, so none of them shows on a closed course; `measure_overdue` and `no_baseline_measure`
are also silent on a closed course, where S6 forbids recording a measure, while
`risk_flag_open` stays until the flag is acknowledged, open course or not.
"""

from dataclasses import dataclass
from datetime import date

from app.rules.snapshot import CourseSnapshot, MeasureFacts

MEASURE_WINDOW = 4  # attended sessions within which some measure should have been recorded
ENDING_NOTICE = 2  # sessions of notice, beyond termination_min, to raise the ending
OVERRUN_FACTOR = 1.5  # weeks per contracted session after which a course is overrunning


@dataclass(frozen=True)
class Advisory:
    """A hint about a course: a stable `code` and a plain-English `message`."""

    code: str
    message: str

    def as_dict(self) -> dict:
        """The advisory as JSON-ready data."""
        return {"code": self.code, "message": self.message}  # not dataclasses.asdict: it deep-copies


def advisories(
    course: CourseSnapshot, today: date, measures: MeasureFacts | None = None
) -> list[Advisory]:
    """All advisories that hold for `course` on `today`, in rules.md's order; measure ones only when `measures` given."""
    if not course.is_open:  # on a closed course only the risk flag can speak (see above)
        found: tuple[Advisory | None, ...] = () if measures is None else (risk_flag_open(measures),)
    else:
        found = (termination_due(course), initial_phase_long(course))
        if measures is not None:
            found += (measure_overdue(course, measures), risk_flag_open(measures), no_baseline_measure(course, measures))
        found += (course_overrunning(course, today),)
    return [a for a in found if a is not None]


def termination_due(course: CourseSnapshot) -> Advisory | None:
    """In the middle phase with limit - attended <= termination_min + 2: raise the ending early."""
    if course.phase != "middle":  # checked first: every course of a list page comes here
        return None
    left = course.limit - course.attended
    if left <= course.protocol_spec.termination_min + ENDING_NOTICE:
        return Advisory(
            "termination_due",
            f"{left} of {course.limit} sessions remain: time to raise the ending with the patient.",
        )
    return None


def initial_phase_long(course: CourseSnapshot) -> Advisory | None:
    """In the initial phase with attended >= initial_max: one more session there is refused (S4)."""
    if course.phase != "initial":
        return None
    maximum = course.protocol_spec.initial_max
    if course.attended >= maximum:
        return Advisory(
            "initial_phase_long",
            f"{course.attended} sessions have been held in the initial phase (at most {maximum}): "
            "agree the formulation and move to the middle phase.",
        )
    return None


def measure_overdue(course: CourseSnapshot, measures: MeasureFacts) -> Advisory | None:
    """No measure within the last 4 attended sessions: progress should be measured regularly.

    Precisely: open, attended >= 4, and either no measure at all or
    attended - latest_measure_attended_number >= 4 (a measure taken on or after session
    attended - 3 counts as recent; one taken before session 1 counts as session 0).
    """
    latest = measures.latest_measure_attended_number
    if not course.is_open or course.attended < MEASURE_WINDOW:
        return None
    if latest is not None and course.attended - latest < MEASURE_WINDOW:
        return None
    return Advisory(
        "measure_overdue",
        f"No outcome measure has been recorded in the last {MEASURE_WINDOW} attended sessions.",
    )


def risk_flag_open(measures: MeasureFacts) -> Advisory | None:
    """A positive risk item is unacknowledged: a clinician must review the patient's safety."""
    if measures.risk_flag_open:
        return Advisory(
            "risk_flag_open",
            "A measure recorded a positive risk item that has not yet been acknowledged.",
        )
    return None


def no_baseline_measure(course: CourseSnapshot, measures: MeasureFacts) -> Advisory | None:
    """Open, a session attended, no measure at or before session 1: outcomes need a baseline."""
    if course.is_open and course.attended >= 1 and not measures.has_baseline:
        return Advisory(
            "no_baseline_measure",
            "No outcome measure was recorded at or before the first session, "
            "so change cannot be measured from a baseline.",
        )
    return None


def course_overrunning(course: CourseSnapshot, today: date) -> Advisory | None:
    """Open and more than limit * 1.5 weeks (days > limit * 10.5) since started_on: IPT is brief."""
    if not course.is_open:
        return None
    weeks = course.limit * OVERRUN_FACTOR
    if (today - course.started_on).days > weeks * 7:
        return Advisory(
            "course_overrunning",
            f"The course started more than {weeks:g} weeks ago, longer than its "
            f"{course.limit} sessions should take.",
        )
    return None
