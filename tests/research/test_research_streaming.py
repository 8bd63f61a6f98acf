"""The export streams batch by batch from its own connection, and a client that goes away mid-stream
frees that connection at once and leaves an 'interrupted' audit event with the rows it was sent."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from starlette.requests import ClientDisconnect

from app.research import repository
from tests.conftest import VIA_PGBOUNCER
from tests.support.clinic import open_course
from tests.support.measures import day, gad7, record

pytestmark = VIA_PGBOUNCER


async def _six_measures(client, world) -> None:
    course = await open_course(client, world.clinician)
    for offset in range(6):
        await record(client, world.clinician, course, "gad-7", gad7(12 - offset), on=day(course, offset))


def _scope(world, path: str, spec_version: str) -> dict:
    token = world.researcher.headers["Authorization"].encode()
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"testserver"), (b"authorization", token)],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}


async def _finished_event(app, request_id: str) -> dict:
    for _ in range(50):  # the closing event is written as the stream is torn down
        async with app.state.engine.connect() as db:
            rows = (await db.execute(sa.text("SELECT details FROM audit_event WHERE request_id = :r"),
                                     {"r": request_id})).scalars().all()
        details = [json.loads(d) if isinstance(d, str) else d for d in rows]
        ended = [d for d in details if d.get("stage") != "started"]
        if ended:
            return ended[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no closing audit event")


def _receiver(gone: asyncio.Event):
    """An ASGI receive: the empty request body, then a disconnect once ``gone`` is set."""
    asked = False

    async def receive() -> dict:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_rows_are_sent_batch_by_batch_each_chunk_whole_rows(app, client, world, monkeypatch):
    await _six_measures(client, world)
    monkeypatch.setattr(repository, "BATCH_ROWS", 2)
    whole = await client.get("/v1/research/measures", headers=world.researcher.headers)
    messages: list[dict] = []
    receive = _receiver(asyncio.Event())  # the client stays

    async def send(message: dict) -> None:
        messages.append(message)

    await asyncio.wait_for(app(_scope(world, "/v1/research/measures", "2.3"), receive, send), timeout=30)
    chunks = [m["body"] for m in messages if m["type"] == "http.response.body" and m.get("body")]
    assert b"".join(chunks) == whole.content and whole.content.count(b"\n") == 6
    assert len(chunks) == 3, "the rows were not sent batch by batch"
    assert all(chunk.count(b"\n") == 2 and chunk.endswith(b"\n") for chunk in chunks)  # whole rows per chunk
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_a_client_that_goes_away_mid_stream_frees_the_connection_and_is_audited(app, client, world, monkeypatch,
                                                                                      spec_version):
    await _six_measures(client, world)
    monkeypatch.setattr(repository, "BATCH_ROWS", 1)
    pool = app.state.engine.pool
    checked_out = pool.checkedout()
    gone, started, bodies = asyncio.Event(), {}, []
    receive = _receiver(gone)

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message.get("body"):
            if gone.is_set():
                raise OSError("the client has gone")  # ASGI 2.4: sending to a gone client fails
            bodies.append(message["body"])
            if len(bodies) == 2:
                gone.set()
            await asyncio.sleep(0.01)

    call = app(_scope(world, "/v1/research/measures", spec_version), receive, send)
    if spec_version == "2.4":  # Starlette reports the failed send as ClientDisconnect (uvicorn speaks 2.3 today)
        with pytest.raises(ClientDisconnect):
            await asyncio.wait_for(call, timeout=30)
    else:
        await asyncio.wait_for(call, timeout=30)
    assert started["status"] == 200
    assert 1 <= len(bodies) < 6
    request_id = dict(started["headers"])[b"x-request-id"].decode()
    event = await _finished_event(app, request_id)
    assert event["stage"] == "interrupted" and 1 <= event["rows"] < 6
    assert pool.checkedout() == checked_out, "the export's connection was not given back"
    assert app.state.research_exports.active == 0, "the export's slot was not given back"
    # The app still answers: nothing was left locked or half-read.
    assert (await client.get("/v1/research/courses", headers=world.researcher.headers)).status_code == 200


async def test_exports_beyond_the_per_process_cap_are_429_and_clinical_work_goes_on(app, client, world):
    await _six_measures(client, world)
    await client.get("/v1/research/courses", headers=world.researcher.headers)
    slots = app.state.research_exports
    assert slots.active == 0 and slots.limit >= 1
    taken = [slots.take() for _ in range(slots.limit)]  # as if that many exports were streaming
    try:
        busy = await client.get("/v1/research/measures", headers=world.researcher.headers)
        assert busy.status_code == 429 and busy.json()["code"] == "rate_limited" and busy.headers["retry-after"]
        assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
    finally:
        for give_back in taken:
            give_back()
            give_back()  # giving back twice frees one slot only
    assert slots.active == 0
    assert (await client.get("/v1/research/measures", headers=world.researcher.headers)).status_code == 200
    assert slots.active == 0
