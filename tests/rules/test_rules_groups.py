"""The group IPT rules (app/rules/groups.py): G1-G8 refuse exactly at their thresholds, phases follow the manual."""

from datetime import date, timedelta

import pytest

from app.rules import RuleViolation
from app.rules.groups import (
    GROUP_PROTOCOLS,
    GroupSnapshot,
    check_facilitators,
    check_group_plan,
    check_group_session,
    check_join,
    check_member_focal_areas,
    check_pre_group_meeting,
    get_group_protocol,
)

MONDAY = date(2026, 1, 5)


def group(**changes) -> GroupSnapshot:
    base = GroupSnapshot(protocol="group-ipt", planned_sessions=8, capacity=8, members=0, sessions_held=0,
                         latest_session_on=None)
    return base._replace(**changes)


def refused(call, *args) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        call(*args)
    return caught.value


def test_the_protocols_are_the_manuals():
    plain, adolescent = GROUP_PROTOCOLS["group-ipt"], GROUP_PROTOCOLS["group-ipt-a"]
    assert (plain.pre_group_meetings, plain.caregiver_meeting, plain.default_planned) == (1, False, 8)
    assert (adolescent.pre_group_meetings, adolescent.caregiver_meeting) == (2, True)
    assert (plain.planned_min, plain.planned_max, plain.session_minutes) == (8, 16, 90)
    assert refused(get_group_protocol, "ipt").status == 422


@pytest.mark.parametrize(("planned", "phases"), [
    (8, ["initial"] + ["middle"] * 6 + ["termination"]),
    (11, ["initial"] + ["middle"] * 9 + ["termination"]),
    (12, ["initial"] + ["middle"] * 9 + ["termination"] * 2),
    (16, ["initial"] + ["middle"] * 13 + ["termination"] * 2),
])
def test_phases_initial_first_termination_last_one_or_two(planned, phases):
    spec = GROUP_PROTOCOLS["group-ipt"]
    assert [spec.phase_of(n, planned) for n in range(1, planned + 1)] == phases


def test_plan_and_capacity_ranges():
    check_group_plan("group-ipt", 8, 8)
    check_group_plan("group-ipt-a", 16, 12)
    for planned, capacity, held, members, rule, code in [
        (7, 8, 0, 0, "G4", "planned_sessions_out_of_range"), (17, 8, 0, 0, "G4", "planned_sessions_out_of_range"),
        (8, 8, 9, 0, "G4", "planned_sessions_out_of_range"), (8, 1, 0, 0, "G2", "validation_error"),
        (8, 13, 0, 0, "G2", "validation_error"), (8, 5, 0, 6, "G2", "validation_error"),
    ]:
        violation = refused(check_group_plan, "group-ipt", planned, capacity, held, members)
        assert (violation.rule, violation.code, violation.status) == (rule, code, 422)


def test_joining_closes_at_session_one_and_at_capacity():
    check_join(group(members=7))
    full = refused(check_join, group(members=8))
    assert (full.rule, full.code, full.status) == ("G2", "group_full", 409)
    late = refused(check_join, group(members=3, sessions_held=1, latest_session_on=MONDAY))
    assert (late.rule, late.code) == ("G1", "group_closed")
    ended = refused(check_join, group(is_open=False))
    assert ended.code == "course_closed"


@pytest.mark.parametrize("protocol", sorted(GROUP_PROTOCOLS))
def test_pre_group_meetings_count_up_to_the_protocols_then_stop(protocol):
    spec = GROUP_PROTOCOLS[protocol]
    held = 0
    while held < spec.pre_group_meetings:
        held = check_pre_group_meeting(group(protocol=protocol), held)
    assert held == spec.pre_group_meetings
    assert refused(check_pre_group_meeting, group(protocol=protocol), held).code == "pre_group_complete"
    started = group(protocol=protocol, sessions_held=1, latest_session_on=MONDAY)
    assert refused(check_pre_group_meeting, started, 0).rule == "G8"


def test_a_whole_eight_session_group():
    """Eight weekly sessions: numbers 1-8, the manual's phases, then the contract is full."""
    snapshot, phases = group(members=8), []
    present = {f"m{i}": 1 for i in range(8)}
    for week in range(8):
        held_on = MONDAY + timedelta(weeks=week)
        number, phase = check_group_session(snapshot, held_on, present)
        assert number == week + 1
        phases.append(phase)
        snapshot = snapshot._replace(sessions_held=number, latest_session_on=held_on)
    assert phases == ["initial"] + ["middle"] * 6 + ["termination"]
    ninth = refused(check_group_session, snapshot, MONDAY + timedelta(weeks=8), present)
    assert (ninth.rule, ninth.code, ninth.context["limit"]) == ("G4", "session_limit_reached", 8)


def test_a_group_session_needs_every_present_members_pre_group_meetings():
    violation = refused(check_group_session, group(protocol="group-ipt-a"), MONDAY, {"a": 2, "b": 1, "c": 0})
    assert (violation.rule, violation.code, violation.context["members"]) == ("G3", "pre_group_required", ["b", "c"])
    assert check_group_session(group(protocol="group-ipt-a"), MONDAY, {"a": 2}) == (1, "initial")


def test_group_sessions_are_held_in_order():
    after = group(sessions_held=2, latest_session_on=MONDAY)
    assert refused(check_group_session, after, MONDAY - timedelta(days=1), {}).code == "session_out_of_order"
    assert check_group_session(after, MONDAY, {}) == (3, "middle")
    assert refused(check_group_session, after._replace(is_open=False), MONDAY, {}).code == "course_closed"


def test_one_focal_area_and_one_or_two_active_clinicians():
    check_member_focal_areas(1)
    for count in (0, 2):
        violation = refused(check_member_focal_areas, count)
        assert (violation.rule, violation.code, violation.status) == ("G6", "too_many_focal_areas", 422)
    check_facilitators({"u1": True})
    check_facilitators({"u1": True, "u2": True})
    for facilitators in ({}, {"u1": True, "u2": True, "u3": True}, {"u1": True, "u2": False}):
        violation = refused(check_facilitators, facilitators)
        assert (violation.rule, violation.code, violation.status) == ("G7", "invalid_facilitator", 422)
    assert refused(check_facilitators, {"u1": True, "u2": False}).context["not_clinicians"] == ["u2"]
