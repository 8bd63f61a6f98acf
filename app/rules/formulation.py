"""The formulation's problem areas (rules.md S10): the four codes, at most two foci, one primary.

A draft may be written step by step, so S10 only refuses what can never be valid; the minimum
(1 or 2 focal areas, exactly one primary, agreed) is checked when leaving the initial phase (P2).
Order: S6 (closed course); then each area on its own (a code outside the four, the same code
twice, a primary that is not focal: `validation_error`); then the set (more than 2 focal areas,
then more than one primary: `too_many_focal_areas`). All S10 refusals are 422.
"""

from collections.abc import Sequence

from app.rules.errors import RuleViolation
from app.rules.protocols import PROBLEM_AREAS
from app.rules.sessions import check_course_open
from app.rules.snapshot import CourseSnapshot, ProblemAreaSnapshot

MAX_FOCAL_AREAS = 2


def check_formulation(
    course: CourseSnapshot, problem_areas: Sequence[ProblemAreaSnapshot]
) -> None:
    """S6/S10: IPT keeps one focus, at most two (one primary), taken from the four problem areas."""
    check_course_open(course)
    seen: set[str] = set()
    for item in problem_areas:
        if item.area not in PROBLEM_AREAS:
            raise _refuse(
                "validation_error",
                "A problem area must be grief, role dispute, role transition or "
                "interpersonal deficits.",
                {"allowed": list(PROBLEM_AREAS)},
            )
        if item.area in seen:
            raise _refuse(
                "validation_error", "Each problem area may appear only once.", {"area": item.area}
            )
        seen.add(item.area)
        if item.primary and not item.focal:
            raise _refuse(
                "validation_error",
                "The primary problem area must also be focal.",
                {"area": item.area},
            )
    focal = sum(1 for a in problem_areas if a.focal)
    if focal > MAX_FOCAL_AREAS:
        raise _refuse(
            "too_many_focal_areas",
            f"At most {MAX_FOCAL_AREAS} problem areas can be focal.",
            {"limit": MAX_FOCAL_AREAS, "current": focal},
        )
    primary = sum(1 for a in problem_areas if a.primary)
    if primary > 1:
        raise _refuse(
            "too_many_focal_areas",
            "Only one focal problem area can be primary.",
            {"limit": 1, "current": primary},
        )


def _refuse(code: str, message: str, context: dict) -> RuleViolation:
    return RuleViolation("S10", code, message, status=422, context=context)
