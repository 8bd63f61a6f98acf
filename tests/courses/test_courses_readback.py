"""What a course reads back: the protocol catalogue, list filters, advisories, ETags and If-Match on POSTs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.support.clinic import CourseDriver, open_course
from tests.support.world import create_patient

# domain.md's protocol table:
# (planned min, planned max, default, initial at most, termination at least, extension at most)
DOMAIN_TABLE = {
    "ipt": (12, 16, 16, 4, 2, 4),
    "ipt-a": (12, 16, 12, 4, 2, 4),
    "ipt-b": (8, 9, 8, 2, 1, 2),
    "ipc": (3, 6, 6, 1, 1, 2),
    "ipt-m": (6, 36, 12, 2, 1, 12),
}
FIELDS = ("planned_min", "planned_max", "default_planned", "initial_max", "termination_min", "extension_max")


def codes(course: dict) -> list[str]:
    return [a["code"] for a in course["advisories"]]


async def test_protocol_catalogue_lists_the_five_protocols_with_domain_numbers(client, world):
    for actor in (world.clinician, world.ehr):
        response = await client.get("/v1/protocols", headers=actor.headers)
        assert response.status_code == 200, response.text
        listed = {p["id"]: tuple(p[f] for f in FIELDS) for p in response.json()}
        assert listed == DOMAIN_TABLE
        assert all(p["name"] and p["description"] for p in response.json())
    assert (await client.get("/v1/protocols")).status_code == 401


async def test_course_list_filters_by_patient_therapist_phase_protocol_and_openness(client, world):
    ipt = await open_course(client, world.clinician, "ipt")
    closed = await open_course(client, world.clinician, "ipc")
    await CourseDriver(client, world.clinician, closed).move("discontinued", reason="other")
    brief = await open_course(client, world.clinician2, "ipt-b")
    active = CourseDriver(client, world.clinician2, await open_course(client, world.clinician2, "ipt"))
    await active.session()
    await active.prepare_middle()
    await active.move("middle")
    later = await client.post("/v1/courses", json={"patient_id": closed["patient_id"], "protocol": "ipc"},
                              headers=world.clinician.headers)
    assert later.status_code == 201, later.text
    later = later.json()

    cases = [
        ({}, [ipt, closed, brief, active.course, later]),
        ({"patient_id": closed["patient_id"]}, [closed, later]),
        ({"patient_id": ipt["patient_id"]}, [ipt]),
        ({"therapist_id": world.clinician2.id}, [brief, active.course]),
        ({"therapist_id": world.supervisor.id}, []),
        ({"phase": "initial"}, [ipt, brief, later]),
        ({"phase": "middle"}, [active.course]),
        ({"phase": "discontinued"}, [closed]),
        ({"protocol": "ipt"}, [ipt, active.course]),
        ({"protocol": "ipc", "open": "true"}, [later]),
        ({"open": "true"}, [ipt, brief, active.course, later]),
        ({"open": "false"}, [closed]),
        ({"therapist_id": world.clinician.id, "open": "true", "phase": "initial"}, [ipt, later]),
        ({"risk_flag_open": "true"}, []),
    ]
    for params, expected in cases:
        response = await client.get("/v1/courses", params=params, headers=world.supervisor.headers)
        assert response.status_code == 200, (params, response.text)
        assert [c["id"] for c in response.json()["data"]] == [c["id"] for c in expected], params
    mine = await client.get("/v1/courses", params={"therapist_id": world.clinician2.id},
                            headers=world.clinician.headers)
    assert mine.json()["data"] == []
    for bad in ({"phase": "ending"}, {"protocol": "cbt"}, {"open": "maybe"}):
        response = await client.get("/v1/courses", params=bad, headers=world.supervisor.headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(("protocol", "planned"), [("ipc", 6), ("ipt-b", 8), ("ipt", 12)])
async def test_termination_due_appears_at_termination_min_plus_two_sessions_left_and_not_before(
    client, world, protocol, planned
):
    course = await open_course(client, world.clinician, protocol, planned_sessions=planned, started_days_ago=30)
    drive = CourseDriver(client, world.clinician, course)
    _, _, _, _, termination_min, _ = DOMAIN_TABLE[protocol]
    first_due = planned - termination_min - 2  # attended at which limit - attended == termination_min + 2
    await drive.session()
    await drive.prepare_middle()
    course = await drive.move("middle")
    attended = 1
    while attended < first_due:
        assert "termination_due" not in codes(course), (attended, course["advisories"])
        await drive.session()
        attended += 1
        course = await drive.read()
    assert course["sessions_attended"] == first_due
    assert "termination_due" in codes(course)
    message = next(a["message"] for a in course["advisories"] if a["code"] == "termination_due")
    assert str(planned - first_due) in message
    await drive.session()
    assert "termination_due" in codes(await drive.read())
    course = await drive.move("termination")
    assert "termination_due" not in codes(course)


@pytest.mark.parametrize("protocol", ["ipc", "ipt-b", "ipt"])
async def test_initial_phase_long_appears_once_initial_max_sessions_are_held(client, world, protocol):
    initial_max = DOMAIN_TABLE[protocol][3]
    course = await open_course(client, world.clinician, protocol, started_days_ago=30)
    drive = CourseDriver(client, world.clinician, course)
    for _ in range(initial_max - 1):
        await drive.session()
    await drive.session("missed")
    course = await drive.read()
    assert course["sessions_attended"] == initial_max - 1
    assert "initial_phase_long" not in codes(course)
    await drive.session()
    course = await drive.read()
    assert "initial_phase_long" in codes(course)
    await drive.prepare_middle()
    assert "initial_phase_long" not in codes(await drive.move("middle"))


@pytest.mark.parametrize(("days_ago", "overrunning"), [(31, False), (32, True)])
async def test_course_overrunning_after_limit_times_one_and_a_half_weeks(client, world, days_ago, overrunning):
    # ipc with 3 planned: 4.5 weeks = 31.5 days.
    course = await open_course(client, world.clinician, "ipc", planned_sessions=3, started_days_ago=days_ago)
    read = (await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)).json()
    assert ("course_overrunning" in codes(read)) is overrunning
    listed = (await client.get("/v1/courses", headers=world.clinician.headers)).json()["data"]
    assert ("course_overrunning" in codes(listed[0])) is overrunning
    if overrunning:
        extended = await client.post(f"/v1/courses/{course['id']}/extensions",
                                     json={"sessions": 1, "reason": "slow start"}, headers=world.supervisor.headers)
        assert "course_overrunning" not in codes(extended.json())  # 4 sessions: 6 weeks
        closed = await CourseDriver(client, world.clinician, extended.json()).move("discontinued", reason="other")
        assert closed["advisories"] == []


async def test_course_etag_changes_with_every_change(client, world):
    actor = world.clinician
    created = await client.post("/v1/courses", json={
        "patient_id": (await create_patient(client, actor))["id"], "protocol": "ipc",
        "started_on": (datetime.now(UTC).date() - timedelta(days=10)).isoformat()}, headers=actor.headers)
    drive = CourseDriver(client, actor, created.json())
    seen = [created.headers["ETag"]]

    async def current() -> dict:
        response = await client.get(drive.url, headers=actor.headers)
        assert response.headers["ETag"] == f'"{response.json()["version"]}"'
        assert response.headers["ETag"] not in seen, seen
        seen.append(response.headers["ETag"])
        return response.json()

    patched = await client.patch(drive.url, json={"diagnosis": "F32.1"},
                                 headers={**actor.headers, "If-Match": seen[-1]})
    assert patched.status_code == 200 and patched.headers["ETag"] not in seen
    seen.append(patched.headers["ETag"])
    assert (await client.get(drive.url, headers=actor.headers)).headers["ETag"] == seen[-1]
    await drive.session()
    await current()
    missed = await drive.session("missed")
    await current()
    assert (await client.delete(f"{drive.url}/sessions/{missed['id']}",
                                headers={**actor.headers, "If-Match": f'"{missed["version"]}"'})).status_code == 204
    await current()
    await drive.prepare_middle()
    moved = await client.post(f"{drive.url}/transitions", json={"to": "middle"}, headers=actor.headers)
    assert moved.status_code == 200 and moved.headers["ETag"] not in seen
    seen.append(moved.headers["ETag"])
    extended = await client.post(f"{drive.url}/extensions", json={"sessions": 1, "reason": "r"},
                                 headers=world.supervisor.headers)
    assert extended.status_code == 200 and extended.headers["ETag"] not in seen
    seen.append(extended.headers["ETag"])
    final = await client.get(drive.url, headers=actor.headers)
    assert (final.headers["ETag"], final.json()["session_limit"]) == (seen[-1], 7)
    assert len(seen) == len(set(seen)) == 7  # created, patched, attended, missed, deleted, moved, extended


@pytest.mark.parametrize("route", ["transitions", "extensions"])
async def test_stale_if_match_on_a_course_post_is_412_and_changes_nothing(client, world, route):
    actor = world.supervisor
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    await drive.session()
    await drive.prepare_middle()
    course = await drive.read()
    body = {"to": "middle"} if route == "transitions" else {"sessions": 1, "reason": "renegotiated"}
    url = f"{drive.url}/{route}"
    stale = await client.post(url, json=body, headers={**actor.headers, "If-Match": f'"{course["version"] - 1}"'})
    assert stale.status_code == 412, stale.text
    assert stale.json()["code"] == "precondition_failed"
    assert await drive.read() == course
    assert (await client.get(url, headers=actor.headers)).json()["data"] == []
    fresh = await client.post(url, json=body, headers={**actor.headers, "If-Match": f'"{course["version"]}"'})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["version"] == course["version"] + 1
    assert len((await client.get(url, headers=actor.headers)).json()["data"]) == 1


async def test_course_patch_needs_the_current_etag_and_a_refused_one_changes_nothing(client, world):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    course = await drive.read()
    change = {"diagnosis": "F33.1", "planned_sessions": 14}
    missing = await client.patch(drive.url, json=change, headers=actor.headers)
    assert (missing.status_code, missing.json()["code"]) == (428, "precondition_required")
    for tag in (f'"{course["version"] + 1}"', f'W/"{course["version"]}"', '"x"'):
        stale = await client.patch(drive.url, json=change, headers={**actor.headers, "If-Match": tag})
        assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed"), tag
    assert await drive.read() == course
    matching = {**actor.headers, "If-Match": f'"{course["version"]}"'}
    for bad in ({"planned_sessions": None}, {"therapist_id": None}, {"phase": "middle"}, {"sessions_attended": 3}):
        response = await client.patch(drive.url, json=bad, headers=matching)
        assert (response.status_code, response.json()["code"]) == (422, "validation_error"), bad
    changed = await client.patch(drive.url, json=change, headers=matching)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["diagnosis"], changed.json()["planned_sessions"], changed.json()["sessions_remaining"]) == (
        "F33.1", 14, 14)


async def test_a_list_read_again_after_a_change_shows_the_change(client, world):
    """A session, a phase move or an edit shows at the next read of a list page."""
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)

    async def listed() -> dict:
        response = await client.get(f"/v1/courses?patient_id={course['patient_id']}", headers=world.clinician.headers)
        assert response.status_code == 200
        [only] = response.json()["data"]
        return only

    assert (await listed())["sessions_attended"] == 0
    await drive.session()
    after = await listed()
    assert after["sessions_attended"] == 1 and after["sessions_remaining"] == after["session_limit"] - 1
    current = await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)
    patched = await client.patch(f"/v1/courses/{course['id']}", json={"planned_sessions": 12},
                                 headers={**world.clinician.headers, "If-Match": current.headers["etag"]})
    assert patched.status_code == 200, patched.text
    assert (await listed())["planned_sessions"] == 12 == patched.json()["planned_sessions"]


async def test_a_listed_course_reads_exactly_as_the_course_read_alone(client, world):
    """A list page presents each course as its own read does: counters, contract arithmetic and advisories."""
    quiet = await open_course(client, world.clinician, started_days_ago=10)
    busy = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, busy)
    for _ in range(4):
        await drive.session()
    closed = await open_course(client, world.clinician)
    await CourseDriver(client, world.clinician, closed).move("discontinued", reason="moved_away")
    response = await client.get("/v1/courses?limit=100", headers=world.clinician.headers)
    assert response.status_code == 200
    listed = {course["id"]: course for course in response.json()["data"]}
    for course in (quiet, busy, closed):
        alone = await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)
        assert listed[course["id"]] == alone.json()
    assert codes(listed[busy["id"]]) == ["initial_phase_long", "measure_overdue", "no_baseline_measure",
                                      "course_overrunning"]
    assert codes(listed[quiet["id"]]) == codes(listed[closed["id"]]) == []


WRITTEN_TIMES = (
    datetime(2026, 3, 1, 9, 30, 0, 0, tzinfo=UTC),  # no microseconds: none written
    datetime(2026, 3, 1, 9, 30, 0, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2025, 12, 31, 0, 0, 0, 500000, tzinfo=UTC),  # trailing zeros kept: six digits
    datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC),  # a three-digit year, zero-padded
)


async def test_a_listed_course_writes_its_timestamps_as_its_read_alone_does(app, client, world):
    """A list page reads timestamps as text built by PostgreSQL (app.core.repository.AsWritten); they must
    match what the API writes for a datetime, digit for digit, with or without microseconds."""
    opened = [await open_course(client, world.clinician) for _ in WRITTEN_TIMES]
    async with app.state.engine.begin() as db:
        for course, at in zip(opened, WRITTEN_TIMES, strict=True):
            later = at + timedelta(microseconds=1)
            await db.execute(text("UPDATE course SET created_at = :at, updated_at = :later WHERE id = :id"),
                             {"at": at, "later": later, "id": course["id"]})
    response = await client.get("/v1/courses?limit=100", headers=world.clinician.headers)
    listed = {course["id"]: course for course in response.json()["data"]}
    for course, at in zip(opened, WRITTEN_TIMES, strict=True):
        alone = (await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)).json()
        assert listed[course["id"]] == alone
        assert alone["created_at"] == at.isoformat().replace("+00:00", "Z")
