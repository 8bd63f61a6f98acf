"""Idempotency-Key on POST: a retry replays the first response and writes nothing again; a key is the
caller's own, refuses another body, is not spent by a failure, and expires after 24 hours."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import VIA_PGBOUNCER
from tests.support.clinic import open_course
from tests.support.world import make_world


def _key() -> str:
    return f"key-{uuid.uuid4()}"


async def _count(app, table: str, column: str, value: str) -> int:
    async with app.state.engine.connect() as db:
        return await db.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": value})


async def _patients_named(app, name: str) -> int:
    return await _count(app, "patient", "display_name", name)


@VIA_PGBOUNCER
async def test_same_key_and_body_replays_the_patient_and_creates_nothing_new(app, client, world):
    name, key = f"Idem {uuid.uuid4().hex}", _key()
    headers = {**world.clinician.headers, "Idempotency-Key": key}
    first = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    for _ in range(2):
        again = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["etag"] == first.headers["etag"]
    assert await _patients_named(app, name) == 1


@VIA_PGBOUNCER
async def test_same_key_and_body_replays_the_session_and_creates_nothing_new(app, client, world):
    course = await open_course(client, world.clinician)
    url = f"/v1/courses/{course['id']}/sessions"
    body = {"held_on": (date.today() - timedelta(days=3)).isoformat(), "attendance": "attended"}
    headers = {**world.clinician.headers, "Idempotency-Key": _key()}
    first = await client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(url, json=body, headers=headers)
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
    assert again.json() == first.json() and again.json()["number"] == 1
    assert await _count(app, "therapy_session", "course_id", course["id"]) == 1
    read = await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)
    assert read.json()["sessions_attended"] == 1


@VIA_PGBOUNCER
async def test_same_key_with_another_body_is_refused(app, client, world):
    name, key = f"Idem {uuid.uuid4().hex}", _key()
    headers = {**world.clinician.headers, "Idempotency-Key": key}
    assert (await client.post("/v1/patients", json={"display_name": name}, headers=headers)).status_code == 201
    other = await client.post("/v1/patients", json={"display_name": name + " B"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await _patients_named(app, name + " B") == 0

    course = await open_course(client, world.clinician)
    url = f"/v1/courses/{course['id']}/sessions"
    body = {"held_on": (date.today() - timedelta(days=3)).isoformat(), "attendance": "attended"}
    headers = {**world.clinician.headers, "Idempotency-Key": _key()}
    assert (await client.post(url, json=body, headers=headers)).status_code == 201
    other = await client.post(url, json={**body, "attendance": "missed"}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    # The same key on another course's sessions is another request too.
    second_course = await open_course(client, world.clinician)
    other = await client.post(f"/v1/courses/{second_course['id']}/sessions", json=body, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert await _count(app, "therapy_session", "course_id", course["id"]) == 1
    assert await _count(app, "therapy_session", "course_id", second_course["id"]) == 0


async def test_another_callers_same_key_runs_on_its_own(app, client, world, other_world):
    name, key = f"Idem {uuid.uuid4().hex}", _key()
    mine = await client.post("/v1/patients", json={"display_name": name},
                             headers={**world.clinician.headers, "Idempotency-Key": key})
    assert mine.status_code == 201
    for actor in (world.clinician2, world.ehr, other_world.clinician):
        theirs = await client.post("/v1/patients", json={"display_name": name},
                                   headers={**actor.headers, "Idempotency-Key": key})
        assert theirs.status_code == 201, theirs.text
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["id"] != mine.json()["id"]
    assert await _patients_named(app, name) == 4


@pytest.mark.parametrize("key", [b"k" * 256, b"has space", b"", b"tab\tkey", "caf\u00e9".encode("latin-1")])
async def test_malformed_key_is_a_bad_request_and_creates_nothing(app, client, world, key):
    name = f"Idem {uuid.uuid4().hex}"
    headers = {**world.clinician.headers, "Idempotency-Key": key}
    response = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert await _patients_named(app, name) == 0


async def test_longest_allowed_key_works(client, world):
    headers = {**world.clinician.headers, "Idempotency-Key": "k" * 255}
    first = await client.post("/v1/patients", json={"display_name": "Long key"}, headers=headers)
    assert first.status_code == 201
    again = await client.post("/v1/patients", json={"display_name": "Long key"}, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"


@VIA_PGBOUNCER
async def test_a_failed_attempt_does_not_spend_the_key(app, client, world):
    external_id, name = f"ehr-{uuid.uuid4().hex}", f"Idem {uuid.uuid4().hex}"
    holder = await client.post("/v1/patients", json={"display_name": "Holder", "external_id": external_id},
                               headers=world.clinician.headers)
    assert holder.status_code == 201
    headers = {**world.clinician.headers, "Idempotency-Key": _key()}
    body = {"display_name": name, "external_id": external_id}
    refused = await client.post("/v1/patients", json=body, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "duplicate_external_id")
    free = await client.patch(f"/v1/patients/{holder.json()['id']}", json={"external_id": f"{external_id}-old"},
                              headers={**world.clinician.headers, "If-Match": holder.headers["etag"]})
    assert free.status_code == 200
    retried = await client.post("/v1/patients", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await _patients_named(app, name) == 1

    # A 422 is not kept either: the corrected body runs under the same key.
    headers = {**world.clinician.headers, "Idempotency-Key": _key()}
    invalid = await client.post("/v1/patients", json={"display_name": name, "sex": "x"}, headers=headers)
    assert (invalid.status_code, invalid.json()["code"]) == (422, "validation_error")
    fixed = await client.post("/v1/patients", json={"display_name": name, "sex": "female"}, headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    assert await _patients_named(app, name) == 2

    # A rule violation (409) on a session is not kept: the retry after the cause is fixed records it.
    course = await open_course(client, world.clinician, protocol="ipc", planned_sessions=3)
    url = f"/v1/courses/{course['id']}/sessions"
    day = date.fromisoformat(course["started_on"])
    later = {"held_on": (day + timedelta(days=5)).isoformat(), "attendance": "missed"}
    assert (await client.post(url, json=later, headers=world.clinician.headers)).status_code == 201
    earlier = {"held_on": (day + timedelta(days=2)).isoformat(), "attendance": "missed"}
    headers = {**world.clinician.headers, "Idempotency-Key": _key()}
    out_of_order = await client.post(url, json=earlier, headers=headers)
    assert out_of_order.status_code == 409, out_of_order.text
    sessions = (await client.get(url, headers=world.clinician.headers)).json()["data"]
    latest = sessions[-1]
    etag = (await client.get(f"{url}/{latest['id']}", headers=world.clinician.headers)).headers["etag"]
    deleted = await client.delete(f"{url}/{latest['id']}", headers={**world.clinician.headers, "If-Match": etag})
    assert deleted.status_code == 204, deleted.text
    retried = await client.post(url, json=earlier, headers=headers)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


async def test_a_key_older_than_24_hours_runs_again(app, client, world):
    name, key = f"Idem {uuid.uuid4().hex}", _key()
    headers = {**world.clinician.headers, "Idempotency-Key": key}
    first = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
    assert first.status_code == 201
    async with app.state.engine.begin() as db:
        changed = await db.execute(
            sa.text("UPDATE idempotency_record SET created_at = :c, expires_at = :e WHERE principal = :p AND key = :k"),
            {"c": datetime(2020, 1, 1, tzinfo=UTC), "e": datetime(2020, 1, 2, tzinfo=UTC), "p": f"user:{world.clinician.id}", "k": key},
        )
        assert changed.rowcount == 1
    again = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert await _patients_named(app, name) == 2
    # The fresh execution is what a later retry replays.
    third = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
    assert third.headers.get("idempotent-replayed") == "true" and third.json()["id"] == again.json()["id"]


def _race(base: str, count: int, path: str, body: dict, headers: dict) -> list[httpx.Response]:
    """POST the same request from ``count`` threads at once, each on its own connection."""
    barrier = threading.Barrier(count)

    def fire(_: int) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=60) as http:
            http.get("/healthz")
            barrier.wait()
            return http.post(path, json=body, headers=headers)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(fire, range(count)))


@VIA_PGBOUNCER
async def test_concurrent_requests_with_one_key_create_one_row(app, client, world, live_url):
    for _ in range(3):
        name = f"Race {uuid.uuid4().hex}"
        headers = {**world.clinician.headers, "Idempotency-Key": _key()}
        responses = _race(live_url, 4, "/v1/patients", {"display_name": name}, headers)
        created = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
        assert len(created) == 1, [(r.status_code, r.text) for r in responses]
        for response in responses:
            if response is created[0]:
                continue
            if response.status_code == 409:
                assert response.json()["code"] == "idempotency_key_in_use"
            else:
                assert response.status_code == 201, response.text
                assert response.headers["idempotent-replayed"] == "true"
                assert response.json() == created[0].json()
        assert await _patients_named(app, name) == 1


async def test_expiry_holds_whatever_time_zone_the_database_session_uses(pg_app, pg_client, postgres_url):
    """PostgreSQL hands timestamps back in the session's time zone; a key that expired an hour ago has expired."""
    app, client, database_url = pg_app, pg_client, postgres_url
    world = await make_world(app)
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.main import create_app
    from tests.conftest import test_settings

    settings = test_settings(database_url, secret_key=app.state.settings.secret_key)
    far_east = create_app(settings)
    await far_east.state.engine.dispose()
    far_east.state.engine = create_async_engine(
        settings.async_database_url, connect_args={"server_settings": {"TimeZone": "Pacific/Kiritimati"}}
    )
    name, key = f"Idem {uuid.uuid4().hex}", _key()
    headers = {**world.clinician.headers, "Idempotency-Key": key}
    first = await client.post("/v1/patients", json={"display_name": name}, headers=headers)
    assert first.status_code == 201
    async with app.state.engine.begin() as db:
        await db.execute(
            sa.text("UPDATE idempotency_record SET created_at = now() - interval '25 hours', "
                    "expires_at = now() - interval '1 hour' WHERE principal = :p AND key = :k"),
            {"p": f"user:{world.clinician.id}", "k": key},
        )
    try:
        transport = httpx.ASGITransport(app=far_east, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            again = await http.post("/v1/patients", json={"display_name": name}, headers=headers)
    finally:
        await far_east.state.engine.dispose()
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert await _patients_named(app, name) == 2
