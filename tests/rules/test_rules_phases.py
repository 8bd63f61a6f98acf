"""Whole courses walked through the rules, and the phase machine P1-P7 at each boundary."""

from datetime import date, timedelta

import pytest

from app.rules import (
    ALLOWED,
    DISCONTINUE_REASONS,
    PHASES,
    PROTOCOLS,
    CourseSnapshot,
    FormulationSnapshot,
    ProblemAreaSnapshot,
    RuleViolation,
    check_course_open,
    check_formulation,
    check_planned_sessions,
    check_session,
    check_transition,
)

START = date(2024, 1, 8)
FOCUS = (ProblemAreaSnapshot("role_dispute", focal=True, primary=True),)
AGREED = FormulationSnapshot("agreed", FOCUS)


def course(**changes) -> CourseSnapshot:
    base = CourseSnapshot(
        protocol="ipt", phase="initial", planned_sessions=16, extension_sessions=0,
        started_on=START, attended=0, attended_in_phase=0, latest_session_on=None,
        formulation=None, inventory_count=0,
    )
    return base._replace(**changes)


def ready(**changes) -> CourseSnapshot:
    """A course that satisfies every precondition of every transition, so only P1 can refuse."""
    defaults = {"formulation": AGREED, "inventory_count": 3, "attended": 5, "attended_in_phase": 1}
    return course(**{**defaults, **changes})


def refused(call, *args) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        call(*args)
    return caught.value


class Walk:
    """Applies steps to a snapshot with _replace, as the service would after writing."""

    def __init__(self, snapshot: CourseSnapshot):
        self.course = snapshot
        self.day = snapshot.started_on
        self.numbers: list[int] = []

    def session(self, attendance: str = "attended") -> int | None:
        number = check_session(self.course, attendance, self.day, self.day)
        attended = number is not None
        self.course = self.course._replace(
            attended=self.course.attended + attended,
            attended_in_phase=self.course.attended_in_phase + attended,
            latest_session_on=self.day,
        )
        if number is not None:
            self.numbers.append(number)
        self.day += timedelta(weeks=1)
        return number

    def refused_session(self) -> RuleViolation:
        return refused(check_session, self.course, "attended", self.day, self.day)

    def move(self, to: str, reason: str | None = None) -> None:
        check_transition(self.course, to, reason)
        self.course = self.course._replace(phase=to, attended_in_phase=0)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_course_walks_from_initial_to_completed_using_every_contracted_session(protocol):
    spec = PROTOCOLS[protocol]
    check_planned_sessions(protocol, spec.default_planned)
    walk = Walk(course(protocol=protocol, planned_sessions=spec.default_planned))
    assert walk.session("missed") is None
    for _ in range(spec.initial_max):
        walk.session()
    assert walk.refused_session().rule == "S4"

    check_formulation(walk.course, FOCUS)
    walk.course = walk.course._replace(formulation=AGREED, inventory_count=4)
    walk.move("middle")
    while walk.course.attended < walk.course.limit - spec.termination_min:
        walk.session()
    walk.session("cancelled")
    assert walk.refused_session().rule == "S5"

    walk.move("termination")
    while walk.course.attended < walk.course.limit:
        walk.session()
    assert walk.refused_session().rule == "S3"
    walk.move("completed")

    assert walk.numbers == list(range(1, spec.default_planned + 1))
    assert refused(check_course_open, walk.course).code == "course_closed"
    assert refused(check_transition, walk.course, "discontinued", "other").rule == "P1"


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_course_can_be_discontinued_from_the_middle_phase_with_a_reason(protocol):
    walk = Walk(course(protocol=protocol, planned_sessions=PROTOCOLS[protocol].default_planned,
                       formulation=AGREED, inventory_count=1))
    walk.session()
    walk.move("middle")
    walk.session("missed")
    assert refused(walk.move, "discontinued").rule == "P7"
    walk.move("discontinued", "lost_to_follow_up")

    assert not walk.course.is_open
    assert walk.refused_session().code == "course_closed"


DISALLOWED = [(a, b) for a in PHASES for b in PHASES + ("paused",) if b not in ALLOWED[a]]


@pytest.mark.parametrize(("from_phase", "to"), DISALLOWED)
def test_transition_not_drawn_in_the_phase_machine_is_refused(from_phase, to):
    error = refused(check_transition, ready(phase=from_phase), to, "other")
    assert (error.rule, error.code, error.status) == ("P1", "invalid_phase_transition", 409)
    assert error.context["allowed"] == sorted(ALLOWED[from_phase])


@pytest.mark.parametrize(("from_phase", "to"), [(a, b) for a in PHASES for b in sorted(ALLOWED[a])])
def test_transition_drawn_in_the_phase_machine_is_allowed_when_ready(from_phase, to):
    check_transition(ready(phase=from_phase), to, "other")


def test_phase_machine_covers_every_phase_and_only_open_phases_move():
    assert set(ALLOWED) == set(PHASES)
    assert {p for p in PHASES if ALLOWED[p]} == {"initial", "middle", "termination"}


def area(code, focal=True, primary=False):
    return ProblemAreaSnapshot(code, focal=focal, primary=primary)


@pytest.mark.parametrize(
    ("formulation", "problem"),
    [
        (None, "missing"),
        (FormulationSnapshot("draft", FOCUS), "not_agreed"),
        (FormulationSnapshot("agreed", ()), "no_focal_area"),
        (FormulationSnapshot("agreed", (area("grief", focal=False),)), "no_focal_area"),
        (FormulationSnapshot("agreed", (area("grief", primary=True), area("role_dispute"),
                                        area("role_transition"))), "too_many_focal_areas"),
        (FormulationSnapshot("agreed", (area("grief"), area("role_dispute"))), "no_primary_area"),
        (FormulationSnapshot("agreed", (area("grief", primary=True),
                                        area("role_dispute", primary=True))),
         "too_many_primary_areas"),
        (FormulationSnapshot("agreed", (area("grief"),
                                        area("role_dispute", focal=False, primary=True))),
         "primary_area_not_focal"),
    ],
)
def test_middle_phase_needs_an_agreed_formulation_with_one_or_two_foci_one_primary(
    formulation, problem
):
    error = refused(check_transition, ready(formulation=formulation), "middle", None)
    assert (error.rule, error.code, error.status) == ("P2", "formulation_required", 409)
    assert error.context == {"problem": problem}


@pytest.mark.parametrize(
    "areas",
    [FOCUS, (area("grief", primary=True), area("role_transition")),
     (area("grief", primary=True), area("interpersonal_deficits", focal=False))],
)
def test_middle_phase_accepts_one_or_two_focal_areas_with_one_primary(areas):
    check_transition(ready(formulation=FormulationSnapshot("agreed", areas)), "middle", None)


def test_middle_phase_needs_an_interpersonal_inventory():
    check_transition(ready(inventory_count=1), "middle", None)
    error = refused(check_transition, ready(inventory_count=0), "middle", None)
    assert (error.rule, error.code) == ("P3", "inventory_required")


def test_middle_phase_needs_an_attended_session():
    check_transition(ready(attended=1, attended_in_phase=1), "middle", None)
    error = refused(check_transition, ready(attended=0, attended_in_phase=0), "middle", None)
    assert (error.rule, error.code) == ("P4", "invalid_phase_transition")


@pytest.mark.parametrize(("from_phase", "to", "rule"),
                         [("middle", "termination", "P5"), ("termination", "completed", "P6")])
def test_phase_cannot_end_before_a_session_was_attended_in_it(from_phase, to, rule):
    check_transition(ready(phase=from_phase, attended_in_phase=1), to, None)
    error = refused(check_transition, ready(phase=from_phase, attended_in_phase=0), to, None)
    assert (error.rule, error.code, error.status) == (rule, "invalid_phase_transition", 409)


@pytest.mark.parametrize("phase", ["initial", "middle", "termination"])
@pytest.mark.parametrize("reason", DISCONTINUE_REASONS)
def test_open_course_is_discontinued_with_any_listed_reason(phase, reason):
    check_transition(course(phase=phase), "discontinued", reason)


@pytest.mark.parametrize("reason", [None, "", "bored", "OTHER", " other"])
def test_discontinuing_without_a_listed_reason_is_a_validation_error(reason):
    error = refused(check_transition, course(phase="middle"), "discontinued", reason)
    assert (error.rule, error.code, error.status) == ("P7", "validation_error", 422)
    assert error.context["allowed"] == list(DISCONTINUE_REASONS)
    assert "bored" not in error.message


def test_closed_course_reports_p1_before_a_missing_reason():
    assert refused(check_transition, course(phase="completed"), "discontinued", None).rule == "P1"


def test_initial_to_middle_reports_formulation_then_inventory_then_attendance():
    bare = course()
    assert refused(check_transition, bare, "middle", None).rule == "P2"
    assert refused(check_transition, bare._replace(formulation=AGREED), "middle", None).rule == "P3"
    with_inventory = bare._replace(formulation=AGREED, inventory_count=1)
    assert refused(check_transition, with_inventory, "middle", None).rule == "P4"


def test_reason_is_ignored_on_transitions_other_than_discontinued():
    check_transition(ready(phase="middle"), "termination", "not a listed reason")
