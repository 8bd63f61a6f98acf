"""The session contract (rules.md S1-S5, S7-S9) at its boundaries, as a client sees it through the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.support.clinic import CourseDriver, open_course
from tests.support.world import create_patient

# domain.md's protocol table, written out here so the tests do not read the catalogue they check.
# protocol: (planned min, planned max, initial at most, termination at least, extension at most)
TABLE = {
    "ipt": (12, 16, 4, 2, 4),
    "ipt-a": (12, 16, 4, 2, 4),
    "ipt-b": (8, 9, 2, 1, 2),
    "ipc": (3, 6, 1, 1, 2),
    "ipt-m": (6, 36, 2, 1, 12),
}


def refused(response, status: int, code: str, rule: str | None = None, **context) -> dict:
    """Assert a problem response: status, code, rule and the context fields a client branches on."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    if rule is not None:
        assert body["rule"] == rule, body
    for name, value in context.items():
        assert body[name] == value, (name, body)
    return body


def utc_today() -> date:
    return datetime.now(UTC).date()


def if_match(actor, version: int) -> dict:
    return {**actor.headers, "If-Match": f'"{version}"'}


@pytest.mark.parametrize("protocol", sorted(TABLE))
async def test_planned_sessions_accepted_at_the_protocol_range_and_refused_one_outside(client, world, protocol):
    low, high = TABLE[protocol][:2]
    actor = world.clinician
    patient = await create_patient(client, actor)
    started = (utc_today() - timedelta(days=30)).isoformat()
    body = {"patient_id": patient["id"], "protocol": protocol, "started_on": started}
    for planned in (low - 1, high + 1):
        response = await client.post("/v1/courses", json={**body, "planned_sessions": planned}, headers=actor.headers)
        refused(response, 422, "planned_sessions_out_of_range", "S1", min=low, max=high)
    created = await client.post("/v1/courses", json={**body, "planned_sessions": high}, headers=actor.headers)
    assert created.status_code == 201, created.text
    assert created.json()["planned_sessions"] == high
    course = created.json()

    url = f"/v1/courses/{course['id']}"
    for planned in (low - 1, high + 1):
        response = await client.patch(url, json={"planned_sessions": planned},
                                      headers=if_match(actor, course["version"]))
        refused(response, 422, "planned_sessions_out_of_range", "S1", min=low, max=high)
    changed = await client.patch(url, json={"planned_sessions": low}, headers=if_match(actor, course["version"]))
    assert changed.status_code == 200, changed.text
    assert (changed.json()["planned_sessions"], changed.json()["session_limit"]) == (low, low)

    other = await create_patient(client, actor)
    at_min = await client.post("/v1/courses", json={**body, "patient_id": other["id"], "planned_sessions": low},
                               headers=actor.headers)
    assert at_min.status_code == 201, at_min.text
    assert at_min.json()["planned_sessions"] == low


async def test_planned_sessions_cannot_drop_below_sessions_attended(client, world):
    # ipc: 3-6 planned; with 6 planned the middle phase runs to session 5.
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, "ipc"))
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    for _ in range(4):
        await drive.session()
    course = await drive.read()
    assert course["sessions_attended"] == 5
    at_attended = await client.patch(drive.url, json={"planned_sessions": 5},
                                     headers=if_match(world.clinician, course["version"]))
    assert at_attended.status_code == 200, at_attended.text
    assert at_attended.json()["sessions_remaining"] == 0
    below = await client.patch(drive.url, json={"planned_sessions": 4},
                               headers=if_match(world.clinician, at_attended.json()["version"]))
    refused(below, 422, "planned_sessions_out_of_range", "S2", attended=5)
    assert (await drive.read())["planned_sessions"] == 5


async def test_attended_session_beyond_the_limit_is_refused_but_a_missed_one_is_recorded(client, world):
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, "ipc", planned_sessions=3))
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    await drive.session()
    await drive.move("termination")
    last = await drive.session()
    assert last["number"] == 3
    refused(await _post_session(drive), 409, "session_limit_reached", "S3", limit=3, current=3)
    missed = await drive.session("missed")
    assert missed["number"] is None
    course = await drive.read()
    assert (course["sessions_attended"], course["sessions_remaining"]) == (3, 0)


@pytest.mark.parametrize("protocol", sorted(TABLE))
async def test_initial_phase_holds_initial_max_sessions_and_the_next_is_an_overrun(client, world, protocol):
    initial_max = TABLE[protocol][2]
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, protocol))
    for number in range(1, initial_max + 1):
        session = await drive.session()
        assert (session["number"], session["phase"]) == (number, "initial")
    refused(await _post_session(drive), 409, "initial_phase_overrun", "S4", limit=initial_max, current=initial_max)
    assert (await drive.session("cancelled"))["number"] is None
    await drive.prepare_middle()
    await drive.move("middle")
    assert (await drive.session())["number"] == initial_max + 1


@pytest.mark.parametrize("protocol", sorted(TABLE))
async def test_middle_phase_runs_to_limit_minus_termination_min_and_the_next_needs_termination(client, world, protocol):
    low, _, _, termination_min, _ = TABLE[protocol]
    course = await open_course(client, world.clinician, protocol, planned_sessions=low)
    drive = CourseDriver(client, world.clinician, course)
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    last_middle = low - termination_min
    for number in range(2, last_middle + 1):
        session = await drive.session()
        assert (session["number"], session["phase"]) == (number, "middle")
    refused(await _post_session(drive), 409, "termination_phase_required", "S5", limit=last_middle, current=last_middle)
    await drive.move("termination")
    session = await drive.session()
    assert (session["number"], session["phase"]) == (last_middle + 1, "termination")


async def test_session_dates_must_fall_between_start_today_and_the_latest_session(client, world):
    today = utc_today()
    started = today - timedelta(days=10)
    course = await open_course(client, world.clinician, "ipt", started_days_ago=10)
    drive = CourseDriver(client, world.clinician, course)
    before_start = await _post_session(drive, started - timedelta(days=1))
    refused(before_start, 409, "session_out_of_order", "S7", started_on=started.isoformat(),
            held_on=(started - timedelta(days=1)).isoformat())
    assert (await _post_session(drive, started)).status_code == 201
    future = await _post_session(drive, today + timedelta(days=1), "missed")
    refused(future, 409, "session_out_of_order", "S7", today=today.isoformat())
    middle_day = today - timedelta(days=5)
    assert (await _post_session(drive, middle_day, "missed")).status_code == 201
    earlier = await _post_session(drive, middle_day - timedelta(days=1), "cancelled")
    refused(earlier, 409, "session_out_of_order", "S7", latest_session_on=middle_day.isoformat())
    assert (await _post_session(drive, middle_day)).status_code == 201  # the same day as the latest is in order
    assert (await _post_session(drive, today)).status_code == 201
    course = await drive.read()
    assert course["sessions_attended"] == 3


async def test_second_open_course_for_a_patient_is_refused_until_the_first_is_closed(client, world):
    first = await open_course(client, world.clinician, "ipc")
    body = {"patient_id": first["patient_id"], "protocol": "ipt"}
    for actor in (world.clinician, world.supervisor, world.ehr):
        response = await client.post("/v1/courses", json={**body, "therapist_id": world.clinician.id},
                                     headers=actor.headers)
        refused(response, 409, "active_course_exists", "S8")
    drive = CourseDriver(client, world.clinician, first)
    await drive.move("discontinued", reason="referred_on")
    second = await client.post("/v1/courses", json=body, headers=world.clinician.headers)
    assert second.status_code == 201, second.text
    assert second.json()["phase"] == "initial"
    third = await client.post("/v1/courses", json=body, headers=world.clinician.headers)
    refused(third, 409, "active_course_exists", "S8")


async def test_extensions_grow_the_contract_up_to_extension_max_by_supervisor_or_integration(client, world):
    # ipc with 3 planned: extension at most 2.
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, "ipc", planned_sessions=3))
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    await drive.session()
    await drive.move("termination")
    await drive.session()
    refused(await _post_session(drive), 409, "session_limit_reached", "S3", limit=3)

    url = f"{drive.url}/extensions"
    by_clinician = await client.post(url, json={"sessions": 1, "reason": "renegotiated"},
                                     headers=world.clinician.headers)
    refused(by_clinician, 403, "forbidden", "S9")
    too_many = await client.post(url, json={"sessions": 3, "reason": "renegotiated"}, headers=world.supervisor.headers)
    refused(too_many, 409, "extension_limit_reached", "S9", limit=2, current=0, requested=3)

    extended = await client.post(url, json={"sessions": 1, "reason": "renegotiated"}, headers=world.supervisor.headers)
    assert extended.status_code == 200, extended.text
    course = extended.json()
    assert (course["extension_sessions"], course["session_limit"], course["sessions_remaining"]) == (1, 4, 1)
    session = await drive.session()
    assert (session["number"], session["phase"]) == (4, "termination")

    by_ehr = await client.post(url, json={"sessions": 1, "reason": "second renegotiation"}, headers=world.ehr.headers)
    assert by_ehr.status_code == 200, by_ehr.text
    assert (by_ehr.json()["session_limit"], by_ehr.json()["sessions_remaining"]) == (5, 1)
    beyond = await client.post(url, json={"sessions": 1, "reason": "once more"}, headers=world.supervisor.headers)
    refused(beyond, 409, "extension_limit_reached", "S9", limit=2, current=2, requested=1)

    listed = (await client.get(url, headers=world.clinician.headers)).json()["data"]
    assert [(e["sessions"], e["by_type"], e["by_id"]) for e in listed] == [
        (1, "user", world.supervisor.id), (1, "integration", world.ehr.id)]
    assert (await drive.session())["number"] == 5
    refused(await _post_session(drive), 409, "session_limit_reached", "S3", limit=5, current=5)


async def _post_session(drive: CourseDriver, held_on: date | None = None, attendance: str = "attended"):
    """POST a session without asserting the outcome; by default dated the day after the driver's last."""
    day = held_on or drive.day + timedelta(days=1)
    body = {"held_on": day.isoformat(), "attendance": attendance}
    response = await drive.client.post(f"{drive.url}/sessions", json=body, headers=drive.actor.headers)
    if response.status_code == 201:
        drive.day = max(drive.day, day)
    return response
