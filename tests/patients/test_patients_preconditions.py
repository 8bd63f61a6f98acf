"""If-Match on PATCH: required, strong, and a stale one changes nothing."""

from __future__ import annotations

from tests.support.world import create_patient


async def _patch(client, actor, patient_id: str, body: dict, if_match: str | None):
    headers = dict(actor.headers)
    if if_match is not None:
        headers["If-Match"] = if_match
    return await client.patch(f"/v1/patients/{patient_id}", json=body, headers=headers)


async def _read(client, actor, patient_id: str):
    return await client.get(f"/v1/patients/{patient_id}", headers=actor.headers)


async def test_patch_without_if_match_is_428_and_nothing_changes(client, world):
    patient = await create_patient(client, world.clinician, display_name="Before")
    response = await _patch(client, world.clinician, patient["id"], {"display_name": "After"}, None)
    assert response.status_code == 428
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "precondition_required"
    read = await _read(client, world.clinician, patient["id"])
    assert read.json() == patient and read.headers["etag"] == '"1"'


async def test_patch_with_stale_if_match_is_412_and_nothing_changes(client, world):
    patient = await create_patient(client, world.clinician, display_name="Before")
    first = await _patch(client, world.clinician, patient["id"], {"display_name": "First"}, '"1"')
    assert first.status_code == 200
    current = first.json()

    stale = await _patch(client, world.clinician, patient["id"], {"display_name": "Lost update"}, '"1"')
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    read = await _read(client, world.clinician, patient["id"])
    assert read.json() == current
    assert read.headers["etag"] == '"2"'


async def test_if_match_for_a_version_never_reached_is_412(client, world):
    patient = await create_patient(client, world.clinician)
    response = await _patch(client, world.clinician, patient["id"], {"sex": "male"}, '"99"')
    assert response.status_code == 412
    assert (await _read(client, world.clinician, patient["id"])).json() == patient


async def test_weak_etag_in_if_match_is_412(client, world):
    patient = await create_patient(client, world.clinician)
    response = await _patch(client, world.clinician, patient["id"], {"display_name": "Weak"}, 'W/"1"')
    assert response.status_code == 412
    assert response.json()["code"] == "precondition_failed"
    assert (await _read(client, world.clinician, patient["id"])).json() == patient


async def test_garbage_if_match_is_412(client, world):
    patient = await create_patient(client, world.clinician)
    for value in ("1", '"abc"', '"-1"', "*x"):
        response = await _patch(client, world.clinician, patient["id"], {"display_name": "X"}, value)
        assert response.status_code == 412, value
    assert (await _read(client, world.clinician, patient["id"])).json() == patient


async def test_if_match_list_containing_the_current_etag_succeeds(client, world):
    patient = await create_patient(client, world.clinician)
    response = await _patch(client, world.clinician, patient["id"], {"display_name": "Listed"}, 'W/"1", "1"')
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
