"""Who reaches which patients: caseloads, roles, and organizations."""

from __future__ import annotations

from tests.support.world import create_patient


async def _ids(client, actor, **params) -> list[str]:
    response = await client.get("/v1/patients", params={"limit": 200, **params}, headers=actor.headers)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["data"]]


async def test_clinician_lists_only_the_patients_they_created(client, world):
    mine = await create_patient(client, world.clinician)
    theirs = await create_patient(client, world.clinician2)
    assert await _ids(client, world.clinician) == [mine["id"]]
    assert await _ids(client, world.clinician2) == [theirs["id"]]


async def test_another_clinicians_patient_is_404_on_get_and_patch(client, world):
    theirs = await create_patient(client, world.clinician2, display_name="Not Yours", external_id="C2-1")
    url = f"/v1/patients/{theirs['id']}"
    read = await client.get(url, headers=world.clinician.headers)
    assert read.status_code == 404
    assert read.json()["code"] == "not_found"
    assert "Not Yours" not in read.text

    patch = await client.patch(url, json={"display_name": "Hijacked"}, headers={**world.clinician.headers, "If-Match": '"1"'})
    assert patch.status_code == 404
    assert patch.json()["code"] == "not_found"
    assert await _ids(client, world.clinician, external_id="C2-1") == []

    unchanged = await client.get(url, headers=world.clinician2.headers)
    assert unchanged.json() == theirs


async def test_supervisor_and_integration_see_every_patient_in_the_organization(client, world):
    created = [
        await create_patient(client, world.clinician),
        await create_patient(client, world.clinician2),
        await create_patient(client, world.ehr),
    ]
    expected = [p["id"] for p in created]
    for actor in (world.supervisor, world.ehr):
        assert await _ids(client, actor) == expected
        for patient in created:
            response = await client.get(f"/v1/patients/{patient['id']}", headers=actor.headers)
            assert response.status_code == 200


async def test_supervisor_can_change_a_clinicians_patient(client, world):
    patient = await create_patient(client, world.clinician)
    response = await client.patch(
        f"/v1/patients/{patient['id']}", json={"display_name": "Seen"}, headers={**world.supervisor.headers, "If-Match": '"1"'}
    )
    assert response.status_code == 200


async def test_researcher_and_admin_are_forbidden_from_patients(client, world):
    patient = await create_patient(client, world.clinician)
    for actor in (world.researcher, world.admin):
        calls = [
            await client.get("/v1/patients", headers=actor.headers),
            await client.post("/v1/patients", json={"display_name": "P"}, headers=actor.headers),
            await client.get(f"/v1/patients/{patient['id']}", headers=actor.headers),
            await client.patch(
                f"/v1/patients/{patient['id']}", json={"display_name": "Q"}, headers={**actor.headers, "If-Match": '"1"'}
            ),
        ]
        for response in calls:
            assert response.status_code == 403, response.request.url
            assert response.json()["code"] == "forbidden"
            assert patient["display_name"] not in response.text
    assert await _ids(client, world.supervisor) == [patient["id"]]


async def test_no_token_is_401_with_www_authenticate(client):
    response = await client.get("/v1/patients")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_another_organization_gets_404_for_every_patient_route_and_never_the_data(client, world, other_world):
    patient = await create_patient(client, world.ehr, external_id="ORG-A-1", display_name="Only In Org A")
    url = f"/v1/patients/{patient['id']}"
    for outsider in (other_world.ehr, other_world.supervisor, other_world.clinician):
        read = await client.get(url, headers=outsider.headers)
        patch = await client.patch(
            url, json={"display_name": "Overwritten"}, headers={**outsider.headers, "If-Match": '"1"'}
        )
        for response in (read, patch):
            assert response.status_code == 404
            assert response.json()["code"] == "not_found"
            assert "Only In Org A" not in response.text and patient["id"] not in response.text

        # A lookup by the other organization's EHR id answers exactly as for an id that exists nowhere,
        # so it reveals neither the patient nor that the id is in use elsewhere.
        found = await client.get("/v1/patients", params={"external_id": "ORG-A-1"}, headers=outsider.headers)
        nowhere = await client.get("/v1/patients", params={"external_id": "NO-SUCH-ID"}, headers=outsider.headers)
        assert (found.status_code, found.json()) == (nowhere.status_code, nowhere.json()) == (200, {"data": [], "next_cursor": None})
        assert patient["id"] not in await _ids(client, outsider)

    assert (await client.get(url, headers=world.ehr.headers)).json() == patient


async def test_an_unknown_patient_id_is_404(client, world):
    for patient_id in ("00000000-0000-7000-8000-000000000000", "not-a-uuid", "x" * 300):
        response = await client.get(f"/v1/patients/{patient_id}", headers=world.supervisor.headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
