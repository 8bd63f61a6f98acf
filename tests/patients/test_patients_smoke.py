from tests.support.world import create_patient


async def test_clinician_creates_and_reads_patient(client, world):
    patient = await create_patient(client, world.clinician, external_id="E1")
    response = await client.get(f"/v1/patients/{patient['id']}", headers=world.clinician.headers)
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json()["external_id"] == "E1"
