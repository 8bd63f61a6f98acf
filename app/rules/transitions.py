"""The phase machine (rules.md P1-P7): initial -> middle -> termination -> completed.

Any open phase may instead move to discontinued, with a reason.

When several rules refuse one transition, the first of this order is raised:
P1 (the move itself is not drawn; this includes any move out of a closed course, so a closed
course is reported as such before a missing reason), then for initial -> middle P2, P3, P4 in
the order of rules.md, then P5 / P6, then P7 (the reason for discontinuing).
"""

from app.rules.errors import RuleViolation
from app.rules.protocols import CLOSED_PHASES, DISCONTINUE_REASONS, PHASES
from app.rules.snapshot import CourseSnapshot

ALLOWED: dict[str, frozenset[str]] = {
    "initial": frozenset({"middle", "discontinued"}),
    "middle": frozenset({"termination", "discontinued"}),
    "termination": frozenset({"completed", "discontinued"}),
    "completed": frozenset(),
    "discontinued": frozenset(),
}


def check_transition(course: CourseSnapshot, to: str, reason: str | None = None) -> None:
    """Refuse a phase change that rules.md P1-P7 forbid; `reason` is only read for discontinued."""
    _check_drawn(course.phase, to)
    if course.phase == "initial" and to == "middle":
        _check_formulation_agreed(course)
        _check_inventory_taken(course)
        _require_attended(course, "P4", course.attended, "the first attended session")
    elif course.phase == "middle" and to == "termination":
        _require_attended(
            course, "P5", course.attended_in_phase, "an attended session in this phase"
        )
    elif course.phase == "termination" and to == "completed":
        _require_attended(
            course, "P6", course.attended_in_phase, "an attended session in this phase"
        )
    elif to == "discontinued":
        _check_discontinue_reason(reason)


def _check_drawn(phase: str, to: str) -> None:
    """P1: only the drawn moves exist, so phases are never skipped, undone or reopened."""
    allowed = ALLOWED.get(phase, frozenset())
    if to in allowed:
        return
    if phase in CLOSED_PHASES:
        message = f"The course is {phase} and can no longer change phase."
    else:
        choices = " or ".join(sorted(allowed)) or "no other phase"
        message = f"A course in the {phase} phase can only move to {choices}."
    raise RuleViolation(
        "P1",
        "invalid_phase_transition",
        message,
        context={
            "from": phase,
            "to": to if to in PHASES else None,
            "allowed": sorted(allowed),
        },
    )


def _check_formulation_agreed(course: CourseSnapshot) -> None:
    """P2: the middle phase works on an agreed focus: 1 or 2 focal problem areas, one primary."""
    formulation = course.formulation
    if formulation is None:
        raise _formulation_required(
            "missing", "Write the formulation before starting the middle phase."
        )
    if formulation.status != "agreed":
        raise _formulation_required(
            "not_agreed", "The formulation must be agreed with the patient before the middle phase."
        )
    areas = formulation.problem_areas
    focal = sum(1 for a in areas if a.focal)
    primaries = [a for a in areas if a.primary]
    if focal == 0:
        raise _formulation_required("no_focal_area", "The formulation needs a focal problem area.")
    if focal > 2:
        raise _formulation_required(
            "too_many_focal_areas", "The formulation may hold at most 2 focal problem areas."
        )
    if not primaries:
        raise _formulation_required(
            "no_primary_area", "One focal problem area of the formulation must be marked primary."
        )
    if len(primaries) > 1:
        raise _formulation_required(
            "too_many_primary_areas", "Only one problem area of the formulation may be primary."
        )
    if not primaries[0].focal:
        raise _formulation_required(
            "primary_area_not_focal", "The primary problem area must be one of the focal areas."
        )


def _formulation_required(problem: str, message: str) -> RuleViolation:
    return RuleViolation("P2", "formulation_required", message, context={"problem": problem})


def _check_inventory_taken(course: CourseSnapshot) -> None:
    """P3: the interpersonal inventory grounds the focus, so it comes before the middle phase."""
    if course.inventory_count < 1:
        raise RuleViolation(
            "P3",
            "inventory_required",
            "Record the interpersonal inventory before starting the middle phase.",
            context={"inventory_count": course.inventory_count},
        )


def _require_attended(course: CourseSnapshot, rule: str, count: int, what: str) -> None:
    """P4/P5/P6: a phase cannot end before a session was attended in it; phases are not skipped."""
    if count < 1:
        raise RuleViolation(
            rule,
            "invalid_phase_transition",
            f"The {course.phase} phase cannot end before {what}.",
            context={"from": course.phase, "attended_in_phase": count},
        )


def _check_discontinue_reason(reason: str | None) -> None:
    """P7: ending a course early needs a reason from the fixed list, for audit and research."""
    if reason not in DISCONTINUE_REASONS:
        raise RuleViolation(
            "P7",
            "validation_error",
            "Discontinuing a course needs a reason from the list of allowed reasons.",
            status=422,
            context={"allowed": list(DISCONTINUE_REASONS)},
        )
