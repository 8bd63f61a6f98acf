"""Session contract S1-S10, each rule at its boundary: the last allowed step, then the refusal."""

from datetime import date, timedelta

import pytest

from app.rules import (
    PROTOCOLS,
    CourseSnapshot,
    ProblemAreaSnapshot,
    RuleViolation,
    check_course_open,
    check_extension,
    check_formulation,
    check_new_course,
    check_planned_sessions,
    check_session,
    check_session_deletable,
)

START = date(2024, 1, 8)
TODAY = date(2024, 3, 4)
LATEST = date(2024, 2, 26)
SPECS = sorted(PROTOCOLS.values(), key=lambda p: p.id)


def course(**changes) -> CourseSnapshot:
    base = CourseSnapshot(
        protocol="ipt", phase="initial", planned_sessions=16, extension_sessions=0,
        started_on=START, attended=0, attended_in_phase=0, latest_session_on=None,
        formulation=None, inventory_count=0,
    )
    return base._replace(**changes)


def refused(call, *args) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        call(*args)
    return caught.value


def attend(snapshot: CourseSnapshot) -> int | None:
    return check_session(snapshot, "attended", TODAY, TODAY)


# S1 / S2

@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.id)
def test_planned_sessions_must_lie_in_the_protocol_range(spec):
    check_planned_sessions(spec.id, spec.planned_min)
    check_planned_sessions(spec.id, spec.planned_max)
    for planned in (spec.planned_min - 1, spec.planned_max + 1):
        error = refused(check_planned_sessions, spec.id, planned)
        assert (error.rule, error.code, error.status) == (
            "S1", "planned_sessions_out_of_range", 422
        )
        assert error.context == {"min": spec.planned_min, "max": spec.planned_max, "attended": 0}


def test_planned_sessions_cannot_drop_below_sessions_attended():
    check_planned_sessions("ipt", 14, attended=14)
    error = refused(check_planned_sessions, "ipt", 13, 14)
    assert (error.rule, error.code, error.status) == ("S2", "planned_sessions_out_of_range", 422)
    assert error.context == {"min": 12, "max": 16, "attended": 14}


def test_unknown_protocol_is_a_validation_error():
    error = refused(check_planned_sessions, "cbt", 12)
    assert (error.code, error.status) == ("validation_error", 422)
    assert error.context["allowed"] == sorted(PROTOCOLS)


# S3 / S4 / S5

@pytest.mark.parametrize("extensions", [0, 2])
def test_attended_session_beyond_the_limit_is_refused(extensions):
    at = course(phase="termination", extension_sessions=extensions)
    assert attend(at._replace(attended=at.limit - 1)) == at.limit
    error = refused(attend, at._replace(attended=at.limit))
    assert (error.rule, error.code, error.status) == ("S3", "session_limit_reached", 409)
    assert error.context == {"limit": 16 + extensions, "current": 16 + extensions}


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.id)
def test_initial_phase_cannot_hold_more_than_initial_max_sessions(spec):
    at = course(protocol=spec.id, planned_sessions=spec.default_planned)
    assert attend(at._replace(attended=spec.initial_max - 1)) == spec.initial_max
    error = refused(attend, at._replace(attended=spec.initial_max))
    assert (error.rule, error.code) == ("S4", "initial_phase_overrun")
    assert error.context == {"limit": spec.initial_max, "current": spec.initial_max}


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.id)
def test_last_termination_min_sessions_cannot_be_held_in_the_middle_phase(spec):
    at = course(protocol=spec.id, planned_sessions=spec.default_planned, phase="middle")
    boundary = at.limit - spec.termination_min
    assert attend(at._replace(attended=boundary - 1)) == boundary
    error = refused(attend, at._replace(attended=boundary))
    assert (error.rule, error.code) == ("S5", "termination_phase_required")
    assert error.context == {"limit": boundary, "current": boundary}
    assert attend(at._replace(phase="termination", attended=boundary)) == boundary + 1


def test_session_limit_wins_over_termination_required_in_the_middle_phase():
    at = course(protocol="ipt-m", planned_sessions=10, phase="middle", attended=10)
    assert refused(attend, at).rule == "S3"


@pytest.mark.parametrize("attendance", ["missed", "cancelled"])
@pytest.mark.parametrize(
    ("phase", "attended"), [("initial", 4), ("middle", 14), ("termination", 16)]
)
def test_missed_and_cancelled_sessions_use_no_contracted_session(attendance, phase, attended):
    at = course(phase=phase, attended=attended)
    assert check_session(at, attendance, TODAY, TODAY) is None


def test_unknown_attendance_is_a_validation_error():
    error = refused(check_session, course(), "late", TODAY, TODAY)
    assert (error.code, error.status) == ("validation_error", 422)


# S6

@pytest.mark.parametrize("phase", ["completed", "discontinued"])
@pytest.mark.parametrize("attendance", ["attended", "missed", "cancelled"])
def test_closed_course_refuses_every_session(phase, attendance):
    error = refused(check_session, course(phase=phase, attended=3), attendance, TODAY, TODAY)
    assert (error.rule, error.code, error.status) == ("S6", "course_closed", 409)


@pytest.mark.parametrize("phase", ["initial", "middle", "termination"])
def test_open_course_passes_the_closed_check(phase):
    check_course_open(course(phase=phase))


# S7

@pytest.mark.parametrize("attendance", ["attended", "missed"])
@pytest.mark.parametrize(
    ("held_on", "allowed"),
    [
        (START - timedelta(days=1), False),
        (START, True),
        (TODAY, True),
        (TODAY + timedelta(days=1), False),
    ],
)
def test_session_is_dated_between_course_start_and_today(attendance, held_on, allowed):
    at = course()
    if allowed:
        check_session(at, attendance, held_on, TODAY)
    else:
        error = refused(check_session, at, attendance, held_on, TODAY)
        assert (error.rule, error.code) == ("S7", "session_out_of_order")


@pytest.mark.parametrize(("held_on", "allowed"),
                         [(LATEST - timedelta(days=1), False), (LATEST, True)])
def test_session_is_not_dated_before_the_latest_recorded_session(held_on, allowed):
    at = course(latest_session_on=LATEST, attended=1)
    if allowed:
        assert check_session(at, "attended", held_on, TODAY) == 2
    else:
        error = refused(check_session, at, "cancelled", held_on, TODAY)
        assert (error.rule, error.code) == ("S7", "session_out_of_order")
        assert error.context["latest_session_on"] == LATEST.isoformat()


def test_misdated_session_is_reported_before_the_session_limit():
    at = course(phase="termination", attended=16)
    assert refused(check_session, at, "attended", TODAY + timedelta(days=1), TODAY).rule == "S7"


def test_only_the_latest_session_can_be_deleted():
    check_session_deletable(True)
    error = refused(check_session_deletable, False)
    assert (error.rule, error.code) == ("S7", "session_out_of_order")


# S8

def test_second_open_course_for_a_patient_is_refused():
    check_new_course(False)
    error = refused(check_new_course, True)
    assert (error.rule, error.code) == ("S8", "active_course_exists")


# S9

@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.id)
def test_extensions_stop_at_the_protocol_extension_max(spec):
    at = course(protocol=spec.id, phase="middle", extension_sessions=spec.extension_max - 1)
    check_extension(at, 1, True)
    error = refused(check_extension, at, 2, True)
    assert (error.rule, error.code, error.status) == ("S9", "extension_limit_reached", 409)
    assert error.context == {
        "limit": spec.extension_max, "current": spec.extension_max - 1, "requested": 2,
    }


def test_extension_by_a_non_supervisor_is_forbidden_even_on_a_closed_course():
    for phase in ("middle", "completed"):
        error = refused(check_extension, course(phase=phase), 1, False)
        assert (error.rule, error.code, error.status) == ("S9", "forbidden", 403)


@pytest.mark.parametrize("phase", ["completed", "discontinued"])
def test_extension_on_a_closed_course_is_refused(phase):
    error = refused(check_extension, course(phase=phase), 1, True)
    assert (error.rule, error.code, error.status) == ("S9", "course_closed", 409)


@pytest.mark.parametrize("sessions", [0, -1])
def test_extension_must_add_at_least_one_session(sessions):
    error = refused(check_extension, course(phase="middle"), sessions, True)
    assert (error.rule, error.code, error.status) == ("S9", "validation_error", 422)


# S10

def area(code, focal=True, primary=False):
    return ProblemAreaSnapshot(code, focal=focal, primary=primary)


@pytest.mark.parametrize(
    "areas",
    [
        (),
        (area("grief", focal=False),),
        (area("grief", primary=True),),
        (area("grief", primary=True), area("role_dispute")),
        (area("grief", primary=True), area("role_dispute"),
         area("role_transition", focal=False), area("interpersonal_deficits", focal=False)),
    ],
)
def test_formulation_with_at_most_two_focal_areas_and_one_primary_is_accepted(areas):
    check_formulation(course(), areas)


@pytest.mark.parametrize(
    ("areas", "code"),
    [
        ((area("loneliness"),), "validation_error"),
        ((area("grief", primary=True), area("grief")), "validation_error"),
        ((area("grief", focal=False, primary=True),), "validation_error"),
        ((area("grief", primary=True), area("role_dispute"), area("role_transition")),
         "too_many_focal_areas"),
        ((area("grief", primary=True), area("role_dispute", primary=True)),
         "too_many_focal_areas"),
    ],
    ids=["unknown_area", "same_area_twice", "primary_not_focal", "three_focal", "two_primaries"],
)
def test_formulation_outside_ipt_focus_limits_is_refused(areas, code):
    error = refused(check_formulation, course(), areas)
    assert (error.rule, error.code, error.status) == ("S10", code, 422)
    assert "loneliness" not in error.message


def test_formulation_on_a_closed_course_is_refused_as_closed():
    error = refused(check_formulation, course(phase="completed"), (area("loneliness"),))
    assert (error.rule, error.code) == ("S6", "course_closed")


def test_session_held_in_an_earlier_phase_cannot_be_deleted():
    from app.rules import RuleViolation, check_session_deletable

    check_session_deletable(True, True)
    with pytest.raises(RuleViolation) as refused:
        check_session_deletable(True, False)
    assert (refused.value.rule, refused.value.code) == ("S7", "session_out_of_order")
