"""The measure advisories at their thresholds, and the session axis kept current as sessions change."""

from tests.support.clinic import CourseDriver, open_course
from tests.support.measures import course_codes, day, phq9, record


async def test_no_baseline_measure_until_a_measure_at_or_before_session_1(client, world):
    course = await open_course(client, world.clinician)
    assert "no_baseline_measure" not in await course_codes(client, world.clinician, course)  # nothing attended yet
    drive = CourseDriver(client, world.clinician, course)
    await drive.session()
    assert "no_baseline_measure" in await course_codes(client, world.clinician, course)
    await record(client, world.clinician, course, "phq-9", phq9(12), on=day(course, 2))  # after session 1
    assert "no_baseline_measure" in await course_codes(client, world.clinician, course)
    await record(client, world.clinician, course, "wsas", [1] * 5, on=day(course, 1))  # the day of session 1
    assert "no_baseline_measure" not in await course_codes(client, world.clinician, course)


async def test_measure_before_any_session_is_a_baseline_at_session_0(client, world):
    course = await open_course(client, world.clinician)
    baseline = await record(client, world.clinician, course, "phq-9", phq9(12), on=day(course, 0))
    assert baseline["session_number"] == 0
    await CourseDriver(client, world.clinician, course).session()
    assert "no_baseline_measure" not in await course_codes(client, world.clinician, course)


async def test_measure_overdue_after_4_attended_sessions_without_a_measure(client, world):
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    await record(client, world.clinician, course, "phq-9", phq9(15), on=day(course, 1))
    await drive.session()  # session 1, the day of the measure: it now sits at session 1
    await drive.prepare_middle()
    await drive.move("middle")
    for _ in range(3):  # sessions 2-4: 4 - 1 = 3 sessions since the measure
        await drive.session()
    assert "measure_overdue" not in await course_codes(client, world.clinician, course)
    await drive.session()  # session 5: 4 sessions since
    codes = await course_codes(client, world.clinician, course)
    assert "measure_overdue" in codes and "no_baseline_measure" not in codes
    await record(client, world.clinician, course, "gad-7", [1] * 7, on=day(course, 5))
    assert "measure_overdue" not in await course_codes(client, world.clinician, course)


async def test_measure_overdue_and_no_baseline_on_a_course_never_measured(client, world):
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    for _ in range(3):
        await drive.session()
    assert "measure_overdue" not in await course_codes(client, world.clinician, course)
    await drive.session()
    codes = await course_codes(client, world.clinician, course)
    assert {"measure_overdue", "no_baseline_measure"} <= set(codes)
    listed = (await client.get(f"/v1/courses?patient_id={course['patient_id']}", headers=world.clinician.headers)).json()
    assert {"measure_overdue", "no_baseline_measure"} <= {a["code"] for a in listed["data"][0]["advisories"]}


async def test_recording_and_deleting_sessions_keeps_the_session_axis_current(client, world):
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    first = await drive.session()
    early = await record(client, world.clinician, course, "phq-9", phq9(14), on=day(course, 2))
    linked = await record(client, world.clinician, course, "gad-7", [2] * 7, on=day(course, 1), session_id=first["id"])
    assert (early["session_number"], linked["session_number"]) == (1, 1)
    second = await drive.session()  # held on day 2, the day of the PHQ-9 recorded before it
    url = f"/v1/courses/{course['id']}/measures"
    renumbered = (await client.get(f"{url}/{early['id']}", headers=world.clinician.headers)).json()
    assert (renumbered["session_number"], renumbered["version"]) == (2, 2)
    untouched = (await client.get(f"{url}/{linked['id']}", headers=world.clinician.headers)).json()
    assert (untouched["session_number"], untouched["version"]) == (1, 1)
    trajectory = (await client.get(f"/v1/courses/{course['id']}/outcomes", headers=world.clinician.headers)).json()
    assert [p["session_number"] for i in trajectory["instruments"] for p in i["trajectory"]] == [2, 1]

    response = await client.delete(f"/v1/courses/{course['id']}/sessions/{second['id']}",
                                   headers={**world.clinician.headers, "If-Match": f'"{second["version"]}"'})
    assert response.status_code == 204, response.text
    assert (await client.get(f"{url}/{early['id']}", headers=world.clinician.headers)).json()["session_number"] == 1
    response = await client.delete(f"/v1/courses/{course['id']}/sessions/{first['id']}",
                                   headers={**world.clinician.headers, "If-Match": f'"{first["version"]}"'})
    assert response.status_code == 204, response.text
    unlinked = (await client.get(f"{url}/{linked['id']}", headers=world.clinician.headers)).json()
    assert (unlinked["session_id"], unlinked["session_number"]) == (None, 0)
    assert "no_baseline_measure" not in await course_codes(client, world.clinician, course)


async def test_course_json_hides_the_measure_bookkeeping_columns(client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "phq-9", phq9(12))
    read = (await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)).json()
    hidden = {"first_measure_on", "last_measure_on", "last_measure_session_number", "first_attended_on"}
    assert hidden.isdisjoint(read) and hidden.isdisjoint(course)


async def test_measure_writes_and_reads_are_audited_against_the_patient(client, world):
    course = await open_course(client, world.clinician)
    measure = await record(client, world.ehr, course, "phq-9", phq9(12, item9=1))
    await client.get(f"/v1/courses/{course['id']}/measures/{measure['id']}", headers=world.clinician.headers)
    await client.get(f"/v1/courses/{course['id']}/outcomes", headers=world.clinician.headers)
    response = await client.get(f"/v1/audit-events?patient_id={course['patient_id']}&limit=200", headers=world.admin.headers)
    assert response.status_code == 200, response.text
    seen = {(e["action"], e["resource_type"], e["resource_id"], e["actor_id"]) for e in response.json()["data"]}
    assert {("create", "measure", measure["id"], world.ehr.id), ("read", "measure", measure["id"], world.clinician.id),
            ("read", "outcome", course["id"], world.clinician.id)} <= seen
