"""Every access to patient data, every log-in and every refusal leaves one audit event, and no event
holds a clinical value or a token."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from tests.support.clinic import open_course
from tests.support.world import PASSWORD, bearer, create_patient

AGENT = "ipt-audit-test/1.0"


async def _event_of(app: FastAPI, response: Any) -> dict[str, Any]:
    """The one audit row written for a response (found by its X-Request-ID)."""
    request_id = response.headers["x-request-id"]
    async with app.state.engine.connect() as db:
        rows = (await db.execute(sa.text("SELECT * FROM audit_event WHERE request_id = :r"), {"r": request_id})).mappings().all()
    assert len(rows) == 1, f"expected one audit event for request {request_id}, found {len(rows)}"
    event = dict(rows[0])
    assert event["request_id"] == request_id
    assert event["ip"] == "127.0.0.1"
    return event


def _headers(actor: Any, **extra: str) -> dict[str, str]:
    return {**actor.headers, "User-Agent": AGENT, **extra}


async def test_patient_read_is_audited_with_its_patient_request_ip_and_user_agent(app, client, world):
    patient = await create_patient(client, world.clinician)
    response = await client.get(f"/v1/patients/{patient['id']}", headers=_headers(world.clinician))
    assert response.status_code == 200
    event = await _event_of(app, response)
    assert event["action"] == "read"
    assert event["resource_type"] == "patient"
    assert event["resource_id"] == patient["id"]
    assert event["patient_id"] == patient["id"]
    assert event["actor_type"] == "user" and event["actor_id"] == world.clinician.id
    assert event["organization_id"] == world.org_id
    assert event["outcome"] == 200
    assert event["user_agent"] == AGENT


async def test_patient_create_and_update_are_audited_with_the_patient(app, client, world):
    response = await client.post("/v1/patients", json={"display_name": "A"}, headers=_headers(world.clinician))
    assert response.status_code == 201
    patient = response.json()
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"], event["outcome"]) == ("create", "patient", 201)
    assert event["resource_id"] == patient["id"]
    assert event["patient_id"] == patient["id"]

    headers = _headers(world.clinician, **{"If-Match": response.headers["etag"]})
    response = await client.patch(f"/v1/patients/{patient['id']}", json={"sex": "female"}, headers=headers)
    assert response.status_code == 200
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"], event["outcome"]) == ("update", "patient", 200)
    assert event["resource_id"] == event["patient_id"] == patient["id"]


async def test_course_create_and_read_note_the_courses_patient(app, client, world):
    patient = await create_patient(client, world.clinician)
    body = {"patient_id": patient["id"], "protocol": "ipt", "started_on": (date.today() - timedelta(days=30)).isoformat()}
    response = await client.post("/v1/courses", json=body, headers=_headers(world.clinician))
    assert response.status_code == 201, response.text
    course = response.json()
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"]) == ("create", "course")
    assert event["resource_id"] == course["id"]
    assert event["patient_id"] == patient["id"]

    response = await client.get(f"/v1/courses/{course['id']}", headers=_headers(world.clinician))
    assert response.status_code == 200
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"], event["resource_id"]) == ("read", "course", course["id"])
    assert event["patient_id"] == patient["id"]


async def test_inventory_create_and_delete_name_the_relationship_and_the_patient(app, client, world):
    course = await open_course(client, world.clinician)
    url = f"/v1/courses/{course['id']}/inventory"
    response = await client.post(url, json={"label": "Partner", "relationship": "partner", "ring": 1},
                                 headers=_headers(world.clinician))
    assert response.status_code == 201, response.text
    relationship = response.json()
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"]) == ("create", "inventory")
    assert event["resource_id"] == relationship["id"]
    assert event["patient_id"] == course["patient_id"]

    headers = _headers(world.clinician, **{"If-Match": response.headers["etag"]})
    response = await client.delete(f"{url}/{relationship['id']}", headers=headers)
    assert response.status_code == 204
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"], event["outcome"]) == ("delete", "inventory", 204)
    assert event["resource_id"] == relationship["id"]
    assert event["patient_id"] == course["patient_id"]


async def test_session_list_read_notes_the_courses_patient(app, client, world):
    course = await open_course(client, world.clinician)
    response = await client.get(f"/v1/courses/{course['id']}/sessions", headers=_headers(world.clinician))
    assert response.status_code == 200
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"]) == ("read", "session")
    assert event["patient_id"] == course["patient_id"]


async def test_list_read_is_audited_without_a_single_resource(app, client, world):
    response = await client.get("/v1/patients?limit=5", headers=_headers(world.clinician))
    assert response.status_code == 200
    event = await _event_of(app, response)
    assert (event["action"], event["resource_type"], event["outcome"]) == ("read", "patient", 200)
    assert event["resource_id"] is None and event["patient_id"] is None
    assert event["actor_id"] == world.clinician.id and event["organization_id"] == world.org_id


async def test_logins_are_audited_whether_they_succeed_or_fail(app, client, world):
    form = {"grant_type": "password", "username": world.clinician.email, "password": PASSWORD}
    response = await client.post("/v1/auth/token", data=form, headers={"User-Agent": AGENT})
    assert response.status_code == 200, response.text
    event = await _event_of(app, response)
    assert event["action"] == "login"
    assert (event["actor_type"], event["actor_id"], event["organization_id"]) == ("user", world.clinician.id, world.org_id)
    assert event["outcome"] == 200 and event["user_agent"] == AGENT
    tokens = [response.json()["access_token"], response.json()["refresh_token"]]

    response = await client.post("/v1/auth/token", data={**form, "password": "wrong-password-123"})
    assert response.status_code in (400, 401)
    event = await _event_of(app, response)
    assert event["action"] == "login_failed"
    assert (event["actor_id"], event["organization_id"]) == (world.clinician.id, world.org_id)
    assert event["outcome"] == response.status_code

    response = await client.post("/v1/auth/token", data={**form, "username": f"nobody-{uuid.uuid4().hex}@example.test"})
    assert response.status_code in (400, 401)
    event = await _event_of(app, response)
    assert event["action"] == "login_failed"
    assert event["actor_id"] is None and event["organization_id"] == ""
    assert event["outcome"] == response.status_code

    async with app.state.engine.connect() as db:
        dump = " ".join(str(tuple(r)) for r in (await db.execute(sa.text("SELECT * FROM audit_event"))).all())
    for token in tokens:
        assert token not in dump
    assert PASSWORD not in dump


async def test_refusals_are_audited_as_denied_with_their_status(app, client, world, other_world):
    foreign = await create_patient(client, other_world.clinician)
    cases = [
        ({}, "/v1/patients", 401, None),
        ({"Authorization": "Bearer not-a-token"}, "/v1/patients", 401, None),
        (world.researcher.headers, "/v1/patients", 403, world.researcher.id),
        (world.clinician.headers, f"/v1/patients/{foreign['id']}", 404, world.clinician.id),
    ]
    for auth, path, status, actor_id in cases:
        response = await client.get(path, headers={**auth, "User-Agent": AGENT})
        assert response.status_code == status, (path, response.text)
        event = await _event_of(app, response)
        assert event["action"] == "denied", (path, status)
        assert event["outcome"] == status
        assert event["actor_id"] == actor_id
        assert event["resource_type"] == "patient"
        assert event["user_agent"] == AGENT
        if actor_id is not None:
            assert event["organization_id"] == world.org_id  # filed under the caller's organization, not the owner's


async def test_no_audit_event_holds_a_clinical_value_or_a_token(app, client, world):
    marker = f"MARKER-{uuid.uuid4().hex}"
    patient = await create_patient(client, world.clinician, display_name=f"Jane {marker}", external_id=f"ehr-{marker}"[:200])
    await client.get(f"/v1/patients/{patient['id']}", headers=world.clinician.headers)
    course = await open_course(client, world.clinician)
    body = {"held_on": date.today().isoformat(), "attendance": "attended", "note": f"Talked about {marker}"}
    response = await client.post(f"/v1/courses/{course['id']}/sessions", json=body, headers=world.clinician.headers)
    assert response.status_code == 201, response.text
    await client.get(f"/v1/courses/{course['id']}/sessions/{response.json()['id']}", headers=world.clinician.headers)
    await client.get("/v1/patients", headers={"Authorization": f"Bearer {marker}"})
    await client.get("/v1/patients", headers={"Authorization": f"Bearer {marker}.{marker}.{marker}"})
    await client.get(f"/v1/patients?external_id=ehr-{marker}", headers=world.clinician.headers)
    token = world.clinician.headers["Authorization"].split()[1]
    minted = bearer(app, world.clinician.id, "user", world.org_id, ["clinical:read"])["Authorization"].split()[1]
    await client.get("/v1/patients", headers={"Authorization": f"Bearer {minted}"})

    async with app.state.engine.connect() as db:
        rows = (await db.execute(sa.text("SELECT * FROM audit_event"))).all()
    dump = "\n".join(str(tuple(r)) for r in rows)
    assert marker not in dump
    assert token not in dump and minted not in dump
    assert "Jane" not in dump and "Talked about" not in dump


async def test_refusal_naming_an_id_with_a_nul_character_is_still_a_denied_event(app, client, world):
    """PostgreSQL cannot store NUL in text: the caller's odd id must not cost the refusal its audit event."""
    response = await client.get("/v1/courses/a%00b/sessions", headers={**world.researcher.headers, "User-Agent": AGENT})
    assert response.status_code == 403, response.text
    event = await _event_of(app, response)
    assert (event["action"], event["outcome"], event["actor_id"]) == ("denied", 403, world.researcher.id)
    assert event["resource_id"] is None
