"""No N+1: the number of SQL statements a list or detail request runs does not grow with its rows."""

from __future__ import annotations

from tests.support.clinic import CourseDriver, open_course
from tests.support.measures import gad7, phq9, record
from tests.support.statements import recording
from tests.support.world import create_patient


async def _statements(app, client, actor, path: str) -> int:
    async with recording(app) as sent:
        response = await client.get(path, headers=actor.headers)
    assert response.status_code == 200, (path, response.text)
    assert sent, f"no statement counted for {path}: the counting is broken"
    return len(sent)


async def _course_with(client, actor, sessions: int) -> CourseDriver:
    """A course with ``sessions`` attended sessions, each with a PHQ-9 and a GAD-7, and an inventory."""
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt-m", planned_sessions=36))
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    for n in range(sessions):
        if n:
            await drive.session()
        on = drive.day.isoformat()
        await record(client, actor, drive.course, "phq-9", phq9(max(20 - n, 0)), on=on)
        await record(client, actor, drive.course, "gad-7", gad7(max(15 - n, 0)), on=on)
        relationship = {"label": f"Friend {n}", "relationship": "friend", "ring": 2}
        await client.post(f"{drive.url}/inventory", json=relationship, headers=actor.headers)
        await client.post(f"{drive.url}/timeline", json={"occurred_on": on, "event": "x", "mood_change": "better"},
                          headers=actor.headers)
    return drive


COURSE_PATHS = ("", "/sessions?limit=200", "/measures?limit=200", "/outcomes", "/outcomes/chart.svg?instrument=phq-9",
                "/inventory?limit=200", "/timeline?limit=200", "/transitions", "/formulation")


async def test_course_reads_run_the_same_statements_for_2_and_12_rows(app, client, world):
    small = await _course_with(client, world.supervisor, 2)
    large = await _course_with(client, world.supervisor, 12)
    for suffix in COURSE_PATHS:
        few = await _statements(app, client, world.supervisor, small.url + suffix)
        many = await _statements(app, client, world.supervisor, large.url + suffix)
        assert few == many, (suffix, few, many)
    for prefix in ("/fhir/r4/EpisodeOfCare/",):
        few = await _statements(app, client, world.supervisor, f"{prefix}{small.course['id']}/$everything")
        many = await _statements(app, client, world.supervisor, f"{prefix}{large.course['id']}/$everything")
        assert few == many, ("$everything", few, many)


async def test_list_pages_run_the_same_statements_for_3_and_30_rows(app, client, world, other_world):
    for _ in range(3):
        await open_course(client, world.supervisor)
    for _ in range(30):
        await open_course(client, other_world.supervisor)
    for path in ("/v1/courses?limit=200", "/v1/patients?limit=200"):
        few = await _statements(app, client, world.supervisor, path)
        many = await _statements(app, client, other_world.supervisor, path)
        assert few == many, (path, few, many)
    for path in ("/v1/users?limit=200", "/v1/audit-events?limit=200", "/v1/webhooks?limit=200"):
        few = await _statements(app, client, world.admin, path)
        many = await _statements(app, client, other_world.admin, path)
        assert few == many, (path, few, many)
    await create_patient(client, world.clinician)
