"""Patients: create, read, change with If-Match, find by EHR id, and what the API refuses."""

from __future__ import annotations

from datetime import date, timedelta

from tests.support.world import create_patient


def _if_match(actor, etag: str) -> dict[str, str]:
    return {**actor.headers, "If-Match": etag}


async def test_create_patient_answers_201_with_location_and_strong_etag(client, world):
    body = {"external_id": "MRN-1", "display_name": "Ada L.", "birth_date": "1980-02-29", "sex": "female"}
    response = await client.post("/v1/patients", json=body, headers=world.clinician.headers)
    assert response.status_code == 201
    patient = response.json()
    assert response.headers["location"] == f"/v1/patients/{patient['id']}"
    assert response.headers["etag"] == '"1"'
    assert patient["version"] == 1
    assert patient["organization_id"] == world.org_id
    assert {k: patient[k] for k in body} == body


async def test_created_patient_reads_back_with_the_same_fields_and_etag(client, world):
    created = await create_patient(client, world.clinician, external_id="MRN-2", sex="male")
    response = await client.get(f"/v1/patients/{created['id']}", headers=world.clinician.headers)
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == created


async def test_patch_with_if_match_changes_only_the_sent_fields_and_advances_version(client, world):
    created = await create_patient(client, world.clinician, external_id="MRN-3", birth_date="1990-01-01")
    url = f"/v1/patients/{created['id']}"
    response = await client.patch(url, json={"display_name": "Renamed"}, headers=_if_match(world.clinician, '"1"'))
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    changed = response.json()
    assert changed["version"] == 2
    assert changed["display_name"] == "Renamed"
    assert changed["birth_date"] == "1990-01-01" and changed["external_id"] == "MRN-3"

    again = await client.patch(url, json={"sex": "other"}, headers=_if_match(world.clinician, '"2"'))
    assert again.status_code == 200 and again.headers["etag"] == '"3"'
    read = await client.get(url, headers=world.clinician.headers)
    assert read.headers["etag"] == '"3"'
    assert read.json()["sex"] == "other" and read.json()["display_name"] == "Renamed"


async def test_external_id_query_finds_exactly_that_patient(client, world):
    await create_patient(client, world.ehr, external_id="EHR-A")
    wanted = await create_patient(client, world.ehr, external_id="EHR-B")
    await create_patient(client, world.ehr, external_id="EHR-BB")
    await create_patient(client, world.ehr)
    response = await client.get("/v1/patients", params={"external_id": "EHR-B"}, headers=world.ehr.headers)
    assert response.status_code == 200
    assert response.json() == {"data": [wanted], "next_cursor": None}


async def test_external_id_query_with_no_match_is_an_empty_list(client, world):
    response = await client.get("/v1/patients", params={"external_id": "nobody"}, headers=world.ehr.headers)
    assert response.status_code == 200
    assert response.json() == {"data": [], "next_cursor": None}


async def test_duplicate_external_id_is_409_with_the_existing_id(client, world):
    first = await create_patient(client, world.ehr, external_id="DUP-1")
    response = await client.post(
        "/v1/patients", json={"external_id": "DUP-1", "display_name": "Someone Else"}, headers=world.ehr.headers
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "duplicate_external_id"
    assert problem["existing_id"] == first["id"]
    listed = await client.get("/v1/patients", params={"external_id": "DUP-1"}, headers=world.ehr.headers)
    assert [p["id"] for p in listed.json()["data"]] == [first["id"]]


async def test_patch_to_a_taken_external_id_is_409_with_the_existing_id(client, world):
    first = await create_patient(client, world.ehr, external_id="TAKEN-1")
    second = await create_patient(client, world.ehr, external_id="TAKEN-2")
    response = await client.patch(
        f"/v1/patients/{second['id']}", json={"external_id": "TAKEN-1"}, headers=_if_match(world.ehr, '"1"')
    )
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_external_id"
    assert response.json()["existing_id"] == first["id"]


async def test_same_external_id_in_another_organization_is_allowed(client, world, other_world):
    mine = await create_patient(client, world.ehr, external_id="SHARED-1")
    theirs = await create_patient(client, other_world.ehr, external_id="SHARED-1")
    assert theirs["id"] != mine["id"]
    assert theirs["organization_id"] == other_world.org_id


async def test_patients_without_external_id_do_not_collide(client, world):
    first = await create_patient(client, world.ehr)
    second = await create_patient(client, world.ehr)
    assert first["external_id"] is None and second["external_id"] is None
    assert first["id"] != second["id"]


async def test_explicit_null_display_name_is_422_on_create(client, world):
    response = await client.post("/v1/patients", json={"display_name": None}, headers=world.clinician.headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["loc"] for e in problem["errors"]] == [["display_name"]]


async def test_explicit_null_display_name_is_422_on_patch_and_nothing_changes(client, world):
    created = await create_patient(client, world.clinician, display_name="Kept")
    url = f"/v1/patients/{created['id']}"
    response = await client.patch(url, json={"display_name": None}, headers=_if_match(world.clinician, '"1"'))
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert ["display_name"] in [e["loc"] for e in problem["errors"]]
    read = await client.get(url, headers=world.clinician.headers)
    assert read.json()["display_name"] == "Kept" and read.headers["etag"] == '"1"'


async def test_null_birth_date_on_patch_clears_it(client, world):
    created = await create_patient(client, world.clinician, birth_date="1970-05-05")
    response = await client.patch(
        f"/v1/patients/{created['id']}", json={"birth_date": None}, headers=_if_match(world.clinician, '"1"')
    )
    assert response.status_code == 200
    assert response.json()["birth_date"] is None


async def test_future_birth_date_is_422(client, world):
    future = (date.today() + timedelta(days=2)).isoformat()
    response = await client.post(
        "/v1/patients", json={"display_name": "Not Born", "birth_date": future}, headers=world.clinician.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert [e["loc"] for e in response.json()["errors"]] == [["birth_date"]]

    created = await create_patient(client, world.clinician)
    patch = await client.patch(
        f"/v1/patients/{created['id']}", json={"birth_date": future}, headers=_if_match(world.clinician, '"1"')
    )
    assert patch.status_code == 422


async def test_read_only_fields_are_refused_on_create_and_patch(client, world):
    for field, value in (("id", "x"), ("version", 7), ("organization_id", world.org_id)):
        response = await client.post(
            "/v1/patients", json={"display_name": "P", field: value}, headers=world.clinician.headers
        )
        assert response.status_code == 422, field
        assert [e["loc"] for e in response.json()["errors"]] == [[field]]
    created = await create_patient(client, world.clinician)
    response = await client.patch(
        f"/v1/patients/{created['id']}", json={"version": 9}, headers=_if_match(world.clinician, '"1"')
    )
    assert response.status_code == 422


async def test_unknown_sex_value_is_422(client, world):
    response = await client.post(
        "/v1/patients", json={"display_name": "P", "sex": "f"}, headers=world.clinician.headers
    )
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["sex"]]
