"""Pseudonyms: stable under one key, keyed per organization, new after rotation, and the key never leaves."""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa

from tests.support.clinic import open_course
from tests.support.measures import gad7, phq9, record
from tests.support.research import export, ndjson_rows


async def _key(app, org_id: str) -> str:
    async with app.state.engine.connect() as db:
        return await db.scalar(sa.text("SELECT research_export_key FROM organization WHERE id = :o"), {"o": org_id})


async def _two_courses(client, world) -> list[dict]:
    courses = []
    for total in (14, 6):
        course = await open_course(client, world.clinician)
        await record(client, world.clinician, course, "phq-9", phq9(total))
        await record(client, world.clinician, course, "gad-7", gad7(total // 2))
        courses.append(course)
    return courses


def _pseudonyms(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["patient"], r["course"]) for r in rows]


async def test_pseudonyms_are_stable_across_exports_and_datasets(client, world):
    await _two_courses(client, world)
    first = ndjson_rows(await export(client, world.researcher, "measures"))
    second = ndjson_rows(await export(client, world.researcher, "measures"))
    assert _pseudonyms(first) == _pseudonyms(second)
    courses = ndjson_rows(await export(client, world.researcher, "courses", format="ndjson"))
    assert set(_pseudonyms(courses)) == set(_pseudonyms(first))
    assert len({r["course"] for r in courses}) == len({r["patient"] for r in courses}) == 2
    for patient, course in _pseudonyms(first):
        assert patient.startswith("p_") and course.startswith("c_") and len(patient) == len(course) == 26


async def test_pseudonyms_are_hmac_sha256_of_the_real_id_under_the_organizations_own_key(app, client, world, other_world):
    [course, _] = await _two_courses(client, world)
    key, other_key = await _key(app, world.org_id), await _key(app, other_world.org_id)
    assert key and other_key and key != other_key  # every organization has its own random key
    rows = ndjson_rows(await export(client, world.researcher, "courses"))

    def pseudonym(secret: str, kind: str, real_id: str) -> str:
        return {"patient": "p_", "course": "c_"}[kind] + hmac.new(
            secret.encode(), f"{kind}\0{real_id}".encode(), hashlib.sha256).hexdigest()[:24]

    expected = (pseudonym(key, "patient", course["patient_id"]), pseudonym(key, "course", course["id"]))
    assert expected in _pseudonyms(rows)
    # The same ids under another organization's key give unrelated pseudonyms: nothing links them.
    assert pseudonym(other_key, "course", course["id"]) not in {r["course"] for r in rows}
    assert hashlib.sha256(course["id"].encode()).hexdigest()[:24] not in str(rows)  # not a plain, unkeyed hash


async def test_rotation_gives_new_pseudonyms_from_then_on_and_only_an_admin_may_rotate(app, client, world):
    await _two_courses(client, world)
    before = ndjson_rows(await export(client, world.researcher, "measures"))
    old_key = await _key(app, world.org_id)
    for actor in (world.researcher, world.clinician, world.supervisor, world.ehr):
        response = await client.post("/v1/research/export-key/rotate", headers=actor.headers)
        assert response.status_code == 403, response.text
    assert await _key(app, world.org_id) == old_key
    response = await client.post("/v1/research/export-key/rotate", headers=world.admin.headers)
    assert response.status_code == 204 and response.content == b""
    new_key = await _key(app, world.org_id)
    assert new_key != old_key
    after = ndjson_rows(await export(client, world.researcher, "measures"))
    assert len(after) == len(before)
    assert not {p for pair in _pseudonyms(after) for p in pair} & {p for pair in _pseudonyms(before) for p in pair}
    # Same rows otherwise, and the new pseudonyms are stable in turn.
    strip = [{k: v for k, v in r.items() if k not in ("patient", "course")} for r in before]
    assert [{k: v for k, v in r.items() if k not in ("patient", "course")} for r in after] == strip
    assert _pseudonyms(ndjson_rows(await export(client, world.researcher, "measures"))) == _pseudonyms(after)


async def test_the_export_key_is_never_returned(app, client, world):
    await _two_courses(client, world)
    await client.post("/v1/research/export-key/rotate", headers=world.admin.headers)
    key = await _key(app, world.org_id)
    responses = [
        await client.get("/v1/organization", headers=world.admin.headers),
        await client.get("/v1/research/dictionary", headers=world.researcher.headers),
        await client.get("/v1/audit-events?limit=200", headers=world.admin.headers),
        await export(client, world.researcher, "measures"),
        await export(client, world.researcher, "courses", format="csv"),
    ]
    org = responses[0].json()
    headers = {**world.admin.headers, "If-Match": responses[0].headers["etag"]}
    responses.append(await client.patch("/v1/organization", json={"name": org["name"]}, headers=headers))
    assert "research_export_key" not in org
    for response in responses:
        assert response.status_code == 200, response.text
        assert key not in response.text
        assert all(key not in value for value in response.headers.values())


async def test_an_organization_without_a_key_gets_one_on_its_first_export(app, client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "gad-7", gad7(9))
    async with app.state.engine.begin() as db:  # as a row written around the app (a seed) would be
        await db.execute(sa.text("UPDATE organization SET research_export_key = NULL WHERE id = :o"), {"o": world.org_id})
    first = ndjson_rows(await export(client, world.researcher, "measures"))
    assert await _key(app, world.org_id)
    assert _pseudonyms(ndjson_rows(await export(client, world.researcher, "measures"))) == _pseudonyms(first)
