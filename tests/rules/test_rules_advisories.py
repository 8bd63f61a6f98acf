"""Advisories appear exactly at their thresholds, and measure advisories only with measure facts."""

import json
from datetime import date, timedelta

import pytest

from app.rules import PROTOCOLS, CourseSnapshot, MeasureFacts, advisories

START = date(2024, 1, 8)
TODAY = date(2024, 3, 4)
SPECS = sorted(PROTOCOLS.values(), key=lambda p: p.id)
MEASURED = MeasureFacts(latest_measure_attended_number=None, has_baseline=True,
                        risk_flag_open=False)


def course(**changes) -> CourseSnapshot:
    base = CourseSnapshot(
        protocol="ipt", phase="initial", planned_sessions=16, extension_sessions=0,
        started_on=START, attended=0, attended_in_phase=0, latest_session_on=None,
        formulation=None, inventory_count=0,
    )
    return base._replace(**changes)


def codes(snapshot: CourseSnapshot, today: date = TODAY, measures=None) -> list[str]:
    return [a.code for a in advisories(snapshot, today, measures)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.id)
def test_termination_due_when_termination_min_plus_two_sessions_remain_in_middle(spec):
    at = course(protocol=spec.id, planned_sessions=spec.default_planned, phase="middle",
                extension_sessions=1)
    due = at.limit - spec.termination_min - 2
    assert "termination_due" in codes(at._replace(attended=due))
    if due >= 1:
        assert "termination_due" not in codes(at._replace(attended=due - 1))
    assert "termination_due" not in codes(at._replace(attended=due, phase="termination"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.id)
def test_initial_phase_long_once_initial_max_sessions_were_held(spec):
    at = course(protocol=spec.id, planned_sessions=spec.default_planned)
    assert "initial_phase_long" not in codes(at._replace(attended=spec.initial_max - 1))
    assert "initial_phase_long" in codes(at._replace(attended=spec.initial_max))
    assert "initial_phase_long" not in codes(
        at._replace(attended=spec.initial_max, phase="middle")
    )


@pytest.mark.parametrize(
    ("planned", "extensions", "last_quiet_day"),
    [(16, 0, 168), (16, 2, 189), (9, 0, 94), (7, 0, 73)],
)
def test_course_overrunning_after_limit_times_one_and_a_half_weeks(
    planned, extensions, last_quiet_day
):
    at = course(protocol="ipt-m", planned_sessions=planned, extension_sessions=extensions,
                phase="middle")
    assert "course_overrunning" not in codes(at, START + timedelta(days=last_quiet_day))
    assert "course_overrunning" in codes(at, START + timedelta(days=last_quiet_day + 1))


@pytest.mark.parametrize("phase", ["completed", "discontinued"])
def test_closed_course_carries_no_phase_timing_or_measure_advisories(phase):
    at = course(phase=phase, attended=16, attended_in_phase=2)
    facts = MeasureFacts(None, has_baseline=False, risk_flag_open=False)
    assert codes(at, START + timedelta(days=1000), facts) == []


@pytest.mark.parametrize(
    ("attended", "latest", "overdue"),
    [
        (3, None, False),
        (4, None, True),
        (4, 0, True),
        (4, 1, False),
        (8, 5, False),
        (8, 4, True),
    ],
)
def test_measure_overdue_without_a_measure_in_the_last_four_attended_sessions(
    attended, latest, overdue
):
    facts = MEASURED._replace(latest_measure_attended_number=latest)
    at = course(phase="middle", attended=attended)
    assert ("measure_overdue" in codes(at, measures=facts)) is overdue


@pytest.mark.parametrize("flag", [True, False])
def test_risk_flag_open_follows_the_unacknowledged_flag_even_when_closed(flag):
    facts = MEASURED._replace(risk_flag_open=flag)
    for phase in ("middle", "completed"):
        assert ("risk_flag_open" in codes(course(phase=phase), measures=facts)) is flag


@pytest.mark.parametrize(
    ("attended", "has_baseline", "shown"),
    [(0, False, False), (1, False, True), (1, True, False)],
)
def test_no_baseline_measure_once_a_session_is_attended_without_one(
    attended, has_baseline, shown
):
    facts = MEASURED._replace(has_baseline=has_baseline)
    at = course(attended=attended)
    assert ("no_baseline_measure" in codes(at, measures=facts)) is shown


def test_measure_advisories_need_measure_facts():
    at = course(phase="middle", attended=8)
    assert codes(at) == []
    facts = MeasureFacts(None, has_baseline=False, risk_flag_open=True)
    assert codes(at, measures=facts) == ["measure_overdue", "risk_flag_open", "no_baseline_measure"]


def test_advisories_come_in_rules_table_order_as_json_ready_dicts():
    at = course(phase="middle", attended=12)
    facts = MeasureFacts(None, has_baseline=False, risk_flag_open=True)
    found = advisories(at, START + timedelta(days=365), facts)
    assert [a.code for a in found] == [
        "termination_due", "measure_overdue", "risk_flag_open", "no_baseline_measure",
        "course_overrunning",
    ]
    data = [a.as_dict() for a in found]
    assert json.loads(json.dumps(data)) == data
    assert set(data[0]) == {"code", "message"} and data[0]["message"]
