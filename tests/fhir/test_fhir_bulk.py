"""FHIR Bulk Data $export: kick-off, status, manifest, NDJSON files, _type, _since, reach, cancel, expiry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core.ids import utcnow
from app.exports.models import BulkExport
from app.fhir.bulk_worker import BulkWorker
from tests.support.fhir import record_course, validate
from tests.support.world import make_world

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
MANIFEST_KEYS = {"transactionTime", "request", "requiresAccessToken", "output", "error"}


def _headers(actor, **extra) -> dict:
    return {**actor.headers, **ASYNC, **extra}


async def drain(app, **overrides) -> None:
    """Work every waiting export to its end, as the background worker does."""
    settings = app.state.settings.model_copy(update=overrides)
    worker = BulkWorker(app.state.engine, settings)
    while await worker.run_one():
        pass


async def kick_off(client, actor, path: str = "/fhir/r4/$export", **params) -> str:
    response = await client.get(path, params=params, headers=_headers(actor))
    assert response.status_code == 202, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    return response.headers["content-location"]


async def finished(app, client, actor, location: str, **overrides) -> dict:
    await drain(app, **overrides)
    response = await client.get(location, headers=actor.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "expires" in response.headers
    manifest = response.json()
    assert set(manifest) == MANIFEST_KEYS and manifest["requiresAccessToken"] is True and manifest["error"] == []
    return manifest


async def download(client, actor, manifest: dict) -> dict[str, list[dict]]:
    """Every file of the manifest, parsed and validated, by resource type; counts checked against the manifest."""
    by_type: dict[str, list[dict]] = {}
    for output in manifest["output"]:
        response = await client.get(output["url"], headers={**actor.headers, "Accept": "application/fhir+ndjson"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        assert response.text.endswith("\n")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert len(lines) == output["count"]
        for resource in lines:
            assert resource["resourceType"] == output["type"]
            validate(resource)
        by_type.setdefault(output["type"], []).extend(lines)
    return by_type


def _ids(by_type: dict[str, list[dict]], resource_type: str) -> list[str]:
    return sorted(r["id"] for r in by_type.get(resource_type, []))


async def _everything(client, actor, course_id: str) -> dict[str, list[str]]:
    bundle = (await client.get(f"/fhir/r4/EpisodeOfCare/{course_id}/$everything", headers=actor.headers)).json()
    out: dict[str, list[str]] = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"]["id"])
    return out


async def test_a_system_export_holds_exactly_what_the_fhir_view_serves_and_no_free_text(app, client, world):
    recorded = await record_course(client, world)
    location = await kick_off(client, world.ehr)
    pending = await client.get(location, headers=world.ehr.headers)
    assert pending.status_code == 202 and "x-progress" in pending.headers and pending.headers["retry-after"] == "2"
    manifest = await finished(app, client, world.ehr, location)
    assert manifest["request"].endswith("/fhir/r4/$export")
    by_type = await download(client, world.ehr, manifest)
    assert set(by_type) == {"Patient", "Practitioner", "EpisodeOfCare", "Condition", "Encounter",
                            "QuestionnaireResponse", "Observation"}
    everything = await _everything(client, world.ehr, recorded.course["id"])
    for resource_type, ids in everything.items():
        assert _ids(by_type, resource_type) == sorted(ids), resource_type  # the world holds this one course
    assert _ids(by_type, "Patient") == [recorded.patient["id"]]
    assert world.clinician.id in _ids(by_type, "Practitioner")
    assert world.admin.id not in _ids(by_type, "Practitioner")  # an admin treats no one
    exported = json.dumps(by_type)
    assert recorded.marker not in exported and "Ada" not in exported


async def test_type_and_since_narrow_the_export(app, client, world):
    recorded = await record_course(client, world)
    first = await finished(app, client, world.ehr, await kick_off(client, world.ehr, _type="Observation,Patient"))
    assert {o["type"] for o in first["output"]} == {"Observation", "Patient"}
    body = {"instrument": "phq-9", "administered_on": recorded.sessions[2]["held_on"], "items": [1] * 9}
    added = await client.post(f"/v1/courses/{recorded.course['id']}/measures", json=body, headers=world.clinician.headers)
    assert added.status_code == 201, added.text
    later = await finished(app, client, world.ehr, await kick_off(client, world.ehr, _since=first["transactionTime"]))
    by_type = await download(client, world.ehr, later)
    assert _ids(by_type, "QuestionnaireResponse") == [added.json()["id"]]
    assert _ids(by_type, "Observation") == [added.json()["id"] + "-total"]
    assert "Encounter" not in by_type  # nothing else changed since


@pytest.mark.parametrize(("params", "prefer", "needle"), [
    ({}, None, "respond-async"),
    ({"_type": "MedicationRequest"}, "respond-async", "_type"),
    ({"_type": "Practitioner"}, "respond-async", "_type"),  # not in a Patient-level export
    ({"_since": "2026-01-01"}, "respond-async", "_since"),
    ({"_since": "yesterday"}, "respond-async", "_since"),
    ({"_outputFormat": "text/csv"}, "respond-async", "_outputFormat"),
    ({"_typeFilter": "Observation?code=x"}, "respond-async", "_typeFilter"),
    ({"allowPartialManifests": "yes"}, "respond-async", "allowPartialManifests"),
])
async def test_a_kick_off_the_server_cannot_honour_is_a_400_operation_outcome(client, world, params, prefer, needle):
    headers = {**world.ehr.headers, **({"Prefer": prefer} if prefer else {})}
    response = await client.get("/fhir/r4/Patient/$export", params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome" and needle in response.text


async def test_handling_lenient_ignores_what_is_not_supported(app, client, world):
    await record_course(client, world)
    response = await client.get("/fhir/r4/$export", params={"_typeFilter": "x", "_type": "Patient,Medication"},
                                headers=_headers(world.ehr, Prefer="respond-async, handling=lenient"))
    assert response.status_code == 202, response.text
    manifest = await finished(app, client, world.ehr, response.headers["content-location"])
    assert {o["type"] for o in manifest["output"]} == {"Patient"}


async def test_a_clinician_exports_their_caseload_and_a_group_is_a_clinicians_caseload(app, client, world):
    mine = await record_course(client, world)
    theirs = await client.post("/v1/patients", json={"display_name": "Other"}, headers=world.clinician2.headers)
    assert theirs.status_code == 201
    manifest = await finished(app, client, world.clinician, await kick_off(client, world.clinician))
    assert _ids(await download(client, world.clinician, manifest), "Patient") == [mine.patient["id"]]
    # The integration asks for the clinician's caseload as a Group, and for the other clinician's.
    group = await finished(app, client, world.ehr, await kick_off(client, world.ehr, f"/fhir/r4/Group/{world.clinician.id}/$export"))
    assert _ids(await download(client, world.ehr, group), "Patient") == [mine.patient["id"]]
    other = await finished(app, client, world.ehr, await kick_off(client, world.ehr, f"/fhir/r4/Group/{world.clinician2.id}/$export"))
    assert _ids(await download(client, world.ehr, other), "Patient") == [theirs.json()["id"]]
    for actor, group_id in ((world.clinician, world.clinician2.id), (world.ehr, world.admin.id), (world.ehr, "nobody")):
        response = await client.get(f"/fhir/r4/Group/{group_id}/$export", headers=_headers(actor))
        assert (response.status_code, response.json()["resourceType"]) == (404, "OperationOutcome")


async def test_a_job_and_its_files_are_the_requesters_alone(app, client, world, other_world):
    await record_course(client, world)
    location = await kick_off(client, world.ehr)
    manifest = await finished(app, client, world.ehr, location)
    file_url = manifest["output"][0]["url"]
    for stranger in (world.supervisor, other_world.ehr):
        for url in (location, file_url):
            response = await client.get(url, headers=stranger.headers)
            assert (response.status_code, response.json()["resourceType"]) == (404, "OperationOutcome"), url
    assert (await client.get(file_url)).status_code == 401
    assert (await client.get("/fhir/r4/$export", headers=_headers(world.researcher))).status_code == 403


async def test_delete_cancels_a_job_and_removes_its_files(app, client, world):
    await record_course(client, world)
    running = await kick_off(client, world.ehr)
    cancelled = await client.delete(running, headers=world.ehr.headers)
    assert cancelled.status_code == 202
    assert (await client.get(running, headers=world.ehr.headers)).status_code == 404
    done = await kick_off(client, world.ehr)
    manifest = await finished(app, client, world.ehr, done)
    assert (await client.delete(done, headers=world.ehr.headers)).status_code == 202
    assert (await client.get(manifest["output"][0]["url"], headers=world.ehr.headers)).status_code == 404
    async with app.state.engine.connect() as db:
        left = await db.scalar(sa.text("SELECT count(*) FROM bulk_export_file WHERE export_id = :id"),
                               {"id": done.rsplit("/", 1)[1]})
    assert left == 0


async def test_files_expire_and_are_purged(app, client, world):
    await record_course(client, world)
    location = await kick_off(client, world.ehr)
    manifest = await finished(app, client, world.ehr, location)
    export_id = location.rsplit("/", 1)[1]
    async with app.state.engine.begin() as db:
        await db.execute(sa.update(BulkExport).where(BulkExport.id == export_id).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await client.get(location, headers=world.ehr.headers)).status_code == 404
    assert (await client.get(manifest["output"][0]["url"], headers=world.ehr.headers)).status_code == 404
    from app.exports import repository as jobs
    async with app.state.engine.begin() as db:
        assert await jobs.purge_expired(db) >= 1
        assert await db.scalar(sa.text("SELECT count(*) FROM bulk_export WHERE id = :id"), {"id": export_id}) == 0


async def test_small_batches_split_a_type_into_several_files_with_every_resource_once(app, client):
    world = await make_world(app)
    for _ in range(3):
        await record_course(client, world)
    manifest = await finished(app, client, world.ehr, await kick_off(client, world.ehr), bulk_export_batch=2)
    parts = [o for o in manifest["output"] if o["type"] == "Observation"]
    assert len(parts) == 6  # 12 measures, 2 a part
    by_type = await download(client, world.ehr, manifest)
    for resource_type, resources in by_type.items():
        ids = [r["id"] for r in resources]
        assert len(ids) == len(set(ids)), resource_type
    assert len(by_type["Patient"]) == 3 and len(by_type["Observation"]) == 12


async def test_too_many_exports_at_once_is_429(app, client, world):
    for _ in range(app.state.settings.bulk_export_max_active):
        await kick_off(client, world.clinician)
    response = await client.get("/fhir/r4/$export", headers=_headers(world.clinician))
    assert (response.status_code, response.json()["resourceType"]) == (429, "OperationOutcome")
    assert "retry-after" in response.headers
    await drain(app)


async def test_a_job_that_cannot_be_rendered_fails_with_an_operation_outcome(app, client, world, monkeypatch):
    await record_course(client, world)
    location = await kick_off(client, world.ehr)
    from app.fhir import bulk

    def broken(*_args):
        raise ValueError("no")

    monkeypatch.setattr(bulk, "SOURCES", (bulk.Source("patients", ("Patient",), bulk.Patient.id, bulk._patient_query, broken),))
    await drain(app)
    response = await client.get(location, headers=world.ehr.headers)
    assert (response.status_code, response.json()["resourceType"]) == (500, "OperationOutcome")
    assert response.json()["issue"][0]["details"]["text"] == "The export failed (ValueError)."


async def test_files_go_gzipped_to_clients_that_accept_gzip_and_plain_to_the_rest(app, client, world):
    import gzip

    from app.fhir.bulk_router import accepts_gzip

    await record_course(client, world)
    manifest = await finished(app, client, world.ehr, await kick_off(client, world.ehr, _type="Observation"))
    url = manifest["output"][0]["url"]
    zipped = await client.get(url, headers={**world.ehr.headers, "Accept-Encoding": "gzip"})
    plain = await client.get(url, headers={**world.ehr.headers, "Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["vary"]
    assert zipped.content == plain.content  # httpx undoes the gzip: the same NDJSON either way
    async with client.stream("GET", url, headers={**world.ehr.headers, "Accept-Encoding": "gzip"}) as response:
        wire = b"".join([chunk async for chunk in response.aiter_raw()])
    assert wire[:2] == b"\x1f\x8b" and len(wire) < len(plain.content)  # gzip on the wire, and smaller
    assert gzip.decompress(wire) == plain.content
    assert len(plain.content.splitlines()) == manifest["output"][0]["count"]
    for header, expected in (("gzip", True), ("GZIP;q=0.5", True), ("gzip;q=0", False), ("*", True), ("br", False),
                             ("", False), ("deflate, gzip;q=1.0, *;q=0.5", True), ("gzip;q=abc", False)):
        assert accepts_gzip(header) is expected, header
