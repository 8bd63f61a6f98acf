"""Who reaches which courses: caseloads, roles, organizations, and the patients courses bring along."""

from __future__ import annotations

import pytest

from tests.support.clinic import AGREED_FORMULATION, CourseDriver, open_course
from tests.support.world import create_patient


def refused(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.json()["code"] == code, response.json()


async def _course_with_everything(client, world) -> dict:
    """A course of world.clinician with a session, formulation, inventory and timeline; its ids for the routes."""
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, "ipt"))
    session = await drive.session()
    await drive.prepare_middle()
    headers = world.clinician.headers
    relationship = (await client.get(f"{drive.url}/inventory", headers=headers)).json()["data"][0]
    event = {"occurred_on": "2025-01-01", "event": "Retired", "mood_change": "worse"}
    assert (await client.post(f"{drive.url}/timeline", json=event, headers=headers)).status_code == 201
    return {"course": await drive.read(), "session": session, "relationship": relationship}


def _routes(ids: dict) -> list[tuple[str, str, dict | None]]:
    """Every route under one course, with a body that would be accepted from someone in reach."""
    url = f"/v1/courses/{ids['course']['id']}"
    session = f"{url}/sessions/{ids['session']['id']}"
    relationship = f"{url}/inventory/{ids['relationship']['id']}"
    return [
        ("GET", url, None),
        ("PATCH", url, {"diagnosis": "F33.0"}),
        ("POST", f"{url}/transitions", {"to": "middle"}),
        ("GET", f"{url}/transitions", None),
        ("POST", f"{url}/extensions", {"sessions": 1, "reason": "more"}),
        ("GET", f"{url}/extensions", None),
        ("POST", f"{url}/sessions", {"held_on": ids["session"]["held_on"], "attendance": "missed"}),
        ("GET", f"{url}/sessions", None),
        ("GET", session, None),
        ("PATCH", session, {"note": "x"}),
        ("DELETE", session, None),
        ("GET", f"{url}/formulation", None),
        ("PUT", f"{url}/formulation", AGREED_FORMULATION),
        ("POST", f"{url}/inventory", {"label": "Boss", "relationship": "colleague", "ring": 3}),
        ("GET", f"{url}/inventory", None),
        ("GET", relationship, None),
        ("PATCH", relationship, {"ring": 2}),
        ("DELETE", relationship, None),
        ("POST", f"{url}/timeline", {"occurred_on": "2025-02-01", "event": "x", "mood_change": "worse"}),
        ("GET", f"{url}/timeline", None),
    ]


async def _snapshot(client, actor, ids: dict) -> list:
    """Everything readable under the course, to prove that refused calls changed nothing."""
    paths = [path for method, path, _ in _routes(ids) if method == "GET"]
    return [(await client.get(path, headers=actor.headers)).json() for path in paths]


async def _course_ids(client, actor, **params) -> list[str]:
    response = await client.get("/v1/courses", params={"limit": 200, **params}, headers=actor.headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]]


@pytest.mark.parametrize("outsider", ["another_clinician", "another_organization"])
async def test_a_course_out_of_reach_is_404_on_every_route_and_absent_from_lists(client, world, other_world, outsider):
    ids = await _course_with_everything(client, world)
    course = ids["course"]
    actors = [world.clinician2] if outsider == "another_clinician" else [other_world.supervisor, other_world.ehr]
    before = await _snapshot(client, world.supervisor, ids)
    for actor in actors:
        for method, path, body in _routes(ids):
            headers = {**actor.headers, "If-Match": '"1"'} if method in ("PATCH", "PUT", "DELETE") else actor.headers
            response = await client.request(method, path, json=body, headers=headers)
            refused(response, 404, "not_found")
            assert course["patient_id"] not in response.text
        assert course["id"] not in await _course_ids(client, actor)
        assert await _course_ids(client, actor, patient_id=course["patient_id"]) == []
        assert await _course_ids(client, actor, therapist_id=world.clinician.id) == []
        refused(await client.get(f"/v1/patients/{course['patient_id']}", headers=actor.headers), 404, "not_found")
    assert await _snapshot(client, world.supervisor, ids) == before


async def test_supervisor_and_integration_reach_every_course_of_the_organization(client, world):
    mine = await open_course(client, world.clinician)
    theirs = await open_course(client, world.clinician2)
    by_ehr = await open_course(client, world.ehr, therapist_id=world.clinician2.id)
    expected = [mine["id"], theirs["id"], by_ehr["id"]]
    for actor in (world.supervisor, world.ehr):
        assert await _course_ids(client, actor) == expected
        for course in (mine, theirs, by_ehr):
            response = await client.get(f"/v1/courses/{course['id']}", headers=actor.headers)
            assert response.status_code == 200, response.text
    assert await _course_ids(client, world.clinician) == [mine["id"]]
    assert await _course_ids(client, world.clinician2) == [theirs["id"], by_ehr["id"]]
    for actor in (world.supervisor, world.ehr):
        patched = await client.patch(f"/v1/courses/{theirs['id']}", json={"diagnosis": "F32.2"},
                                     headers={**actor.headers, "If-Match": f'"{theirs["version"]}"'})
        assert patched.status_code == 200, patched.text
        theirs = patched.json()


@pytest.mark.parametrize("role", ["researcher", "admin"])
async def test_researcher_and_admin_are_forbidden_from_courses(client, world, role):
    ids = await _course_with_everything(client, world)
    actor = getattr(world, role)
    patient = await create_patient(client, world.clinician)
    attempts = [("GET", "/v1/courses", None),
                ("POST", "/v1/courses",
                 {"patient_id": patient["id"], "protocol": "ipt", "therapist_id": world.clinician.id})]
    for method, path, body in attempts + _routes(ids):
        headers = {**actor.headers, "If-Match": '"1"'} if method in ("PATCH", "PUT", "DELETE") else actor.headers
        refused(await client.request(method, path, json=body, headers=headers), 403, "forbidden")


async def test_a_clinician_reaches_the_patient_of_a_course_they_treat_whoever_created_it(client, world):
    patient = await create_patient(client, world.ehr)
    url = f"/v1/patients/{patient['id']}"
    refused(await client.get(url, headers=world.clinician.headers), 404, "not_found")
    body = {"patient_id": patient["id"], "protocol": "ipt", "therapist_id": world.clinician.id}
    refused(await client.post("/v1/courses", json=body, headers=world.clinician.headers), 404, "not_found")
    created = await client.post("/v1/courses", json=body, headers=world.ehr.headers)
    assert created.status_code == 201, created.text
    assert (await client.get(url, headers=world.clinician.headers)).status_code == 200
    course = await client.get(f"/v1/courses/{created.json()['id']}", headers=world.clinician.headers)
    assert course.status_code == 200


async def test_a_clinician_loses_a_patient_they_created_once_another_therapist_treats_them(client, world):
    patient = await create_patient(client, world.clinician)
    url = f"/v1/patients/{patient['id']}"
    assert (await client.get(url, headers=world.clinician.headers)).status_code == 200
    body = {"patient_id": patient["id"], "protocol": "ipt", "therapist_id": world.clinician2.id}
    created = await client.post("/v1/courses", json=body, headers=world.supervisor.headers)
    assert created.status_code == 201, created.text
    refused(await client.get(url, headers=world.clinician.headers), 404, "not_found")
    assert (await client.get(url, headers=world.clinician2.headers)).status_code == 200
    listed = (await client.get("/v1/patients", headers=world.clinician.headers)).json()["data"]
    assert patient["id"] not in [p["id"] for p in listed]


async def test_a_clinician_opens_courses_only_for_themselves_and_only_with_a_clinician(client, world):
    patient = await create_patient(client, world.clinician)
    body = {"patient_id": patient["id"], "protocol": "ipt"}
    for_other = await client.post("/v1/courses", json={**body, "therapist_id": world.clinician2.id},
                                  headers=world.clinician.headers)
    refused(for_other, 403, "forbidden")
    for role in ("researcher", "admin"):
        response = await client.post("/v1/courses", json={**body, "therapist_id": getattr(world, role).id},
                                     headers=world.supervisor.headers)
        refused(response, 422, "validation_error")
        assert response.json()["errors"][0]["loc"] == ["therapist_id"]
    elsewhere = await client.post("/v1/courses", json={**body, "therapist_id": world.ehr.id}, headers=world.ehr.headers)
    refused(elsewhere, 422, "validation_error")
    no_therapist = await client.post("/v1/courses", json=body, headers=world.ehr.headers)
    refused(no_therapist, 422, "validation_error")
    assert await _course_ids(client, world.supervisor) == []

    own = await client.post("/v1/courses", json=body, headers=world.clinician.headers)
    assert own.status_code == 201, own.text
    assert own.json()["therapist_id"] == world.clinician.id
    course = own.json()
    handover = await client.patch(f"/v1/courses/{course['id']}", json={"therapist_id": world.clinician2.id},
                                  headers={**world.clinician.headers, "If-Match": f'"{course["version"]}"'})
    refused(handover, 403, "forbidden")
    assert (await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)).json() == course


async def test_supervisor_hands_a_course_over_and_reach_follows_the_therapist(client, world):
    course = await open_course(client, world.clinician)
    moved = await client.patch(f"/v1/courses/{course['id']}", json={"therapist_id": world.clinician2.id},
                               headers={**world.supervisor.headers, "If-Match": f'"{course["version"]}"'})
    assert moved.status_code == 200, moved.text
    assert moved.json()["therapist_id"] == world.clinician2.id
    refused(await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers), 404, "not_found")
    assert (await client.get(f"/v1/courses/{course['id']}", headers=world.clinician2.headers)).status_code == 200
    patient = await client.get(f"/v1/patients/{course['patient_id']}", headers=world.clinician2.headers)
    assert patient.status_code == 200


async def test_opening_a_course_with_another_organizations_patient_is_404_and_therapist_422(client, world, other_world):
    foreign = await create_patient(client, other_world.clinician)
    for actor in (world.clinician, world.supervisor, world.ehr):
        body = {"patient_id": foreign["id"], "protocol": "ipt", "therapist_id": world.clinician.id}
        refused(await client.post("/v1/courses", json=body, headers=actor.headers), 404, "not_found")
    assert await _course_ids(client, world.ehr, patient_id=foreign["id"]) == []
    assert await _course_ids(client, other_world.clinician, patient_id=foreign["id"]) == []
    local = await create_patient(client, world.supervisor)
    body = {"patient_id": local["id"], "protocol": "ipt", "therapist_id": other_world.clinician.id}
    refused(await client.post("/v1/courses", json=body, headers=world.supervisor.headers), 422, "validation_error")


async def test_a_session_or_relationship_id_under_another_course_is_404(client, world):
    ids = await _course_with_everything(client, world)
    other = await open_course(client, world.clinician)
    url = f"/v1/courses/{other['id']}"
    session, relationship = ids["session"], ids["relationship"]
    matching = {**world.clinician.headers, "If-Match": '"1"'}
    for method, path, body in [
        ("GET", f"{url}/sessions/{session['id']}", None),
        ("PATCH", f"{url}/sessions/{session['id']}", {"note": "x"}),
        ("DELETE", f"{url}/sessions/{session['id']}", None),
        ("GET", f"{url}/inventory/{relationship['id']}", None),
        ("PATCH", f"{url}/inventory/{relationship['id']}", {"ring": 2}),
        ("DELETE", f"{url}/inventory/{relationship['id']}", None),
    ]:
        refused(await client.request(method, path, json=body, headers=matching), 404, "not_found")
    assert await _snapshot(client, world.clinician, ids) == await _snapshot(client, world.supervisor, ids)
    course = ids["course"]["id"]
    assert (await client.get(f"/v1/courses/{course}/sessions/{session['id']}",
                             headers=world.clinician.headers)).json() == session
    assert (await client.get(f"/v1/courses/{course}/inventory/{relationship['id']}",
                             headers=world.clinician.headers)).json() == relationship
