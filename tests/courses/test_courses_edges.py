"""Edges where the schema would otherwise pre-empt the rules: the rules answer, with their ids."""

import pytest

from tests.support.clinic import CourseDriver, open_course
from tests.support.world import create_patient


@pytest.mark.parametrize("planned", [0, -3, 101])
async def test_planned_sessions_far_out_of_range_is_rule_s1(client, world, planned):
    patient = await create_patient(client, world.clinician)
    body = {"patient_id": patient["id"], "protocol": "ipt", "planned_sessions": planned}
    response = await client.post("/v1/courses", json=body, headers=world.clinician.headers)
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["rule"]) == ("planned_sessions_out_of_range", "S1")


async def test_the_session_that_let_a_course_leave_its_phase_cannot_be_deleted(client, world):
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician))
    only_initial = await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    url = f"{drive.url}/sessions/{only_initial['id']}"
    response = await client.delete(url, headers=world.clinician.headers | {"If-Match": '"1"'})
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["rule"]) == ("session_out_of_order", "S7")
    assert (await drive.read())["sessions_attended"] == 1


async def test_formulation_agreed_on_a_given_date_keeps_that_date(client, world):
    from tests.support.clinic import AGREED_FORMULATION

    course = await open_course(client, world.clinician)
    body = {**AGREED_FORMULATION, "agreed_on": "2026-01-15"}
    response = await client.put(f"/v1/courses/{course['id']}/formulation", json=body, headers=world.clinician.headers)
    assert response.status_code == 201, response.text
    assert response.json()["agreed_on"] == "2026-01-15"
    again = await client.get(f"/v1/courses/{course['id']}/formulation", headers=world.clinician.headers)
    assert again.json()["agreed_on"] == "2026-01-15"
