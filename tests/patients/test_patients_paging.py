"""Paging the patient list: every patient once, in creation order; bad limits and cursors are 422."""

from __future__ import annotations

import base64

import orjson

from tests.support.world import create_patient


async def test_paging_120_patients_by_7_finds_each_once_in_creation_order(client, world):
    created = [(await create_patient(client, world.ehr, display_name=f"P{i}"))["id"] for i in range(120)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/patients", params=params, headers=world.ehr.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= 7
        seen += [p["id"] for p in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 50, "paging does not end"
    assert seen == created
    assert pages == 18  # 17 full pages and one of 1


async def test_default_page_is_50_and_an_exact_fit_has_no_next_cursor(client, world):
    ids = [(await create_patient(client, world.clinician))["id"] for _ in range(3)]
    response = await client.get("/v1/patients", params={"limit": 3}, headers=world.clinician.headers)
    assert response.json() == {"data": response.json()["data"], "next_cursor": None}
    assert [p["id"] for p in response.json()["data"]] == ids


async def test_limit_outside_1_to_200_is_422(client, world):
    for limit in ("0", "201", "-1", "many"):
        response = await client.get("/v1/patients", params={"limit": limit}, headers=world.ehr.headers)
        assert response.status_code == 422, limit
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert problem["errors"][0]["loc"] == ["query", "limit"]
    assert (await client.get("/v1/patients", params={"limit": 200}, headers=world.ehr.headers)).status_code == 200


async def _next_cursor(client, actor) -> str:
    response = await client.get("/v1/patients", params={"limit": 1}, headers=actor.headers)
    cursor = response.json()["next_cursor"]
    assert cursor
    return cursor


def _unpack(cursor: str) -> tuple[bytes, bytes]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload, _, tag = raw.rpartition(b".")
    return payload, tag


def _pack(payload: bytes, tag: bytes) -> str:
    return base64.urlsafe_b64encode(payload + b"." + tag).decode().rstrip("=")


async def _assert_invalid_cursor(client, actor, cursor: str) -> None:
    response = await client.get("/v1/patients", params={"cursor": cursor}, headers=actor.headers)
    assert response.status_code == 422, (cursor, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_cursor"


async def test_forged_cursors_are_422_invalid_cursor(client, world):
    await create_patient(client, world.ehr)
    forged = [
        "not-a-cursor",
        "!!!!",
        "é",
        _pack(b"garbage", b"0" * 32),
        _pack(orjson.dumps(["patients", "00000000-0000-7000-8000-000000000000"]), b"0" * 32),
        _pack(orjson.dumps(["patients", "x"]), b""),
        _pack(orjson.dumps({"a": 1, "b": 2}), b"0" * 32),
        _pack(orjson.dumps(["patients", 5]), b"0" * 32),
        _pack(orjson.dumps(7), b"0" * 32),
        _pack(b"\xff\xfe", b"\xff"),
        base64.urlsafe_b64encode(b"no separator").decode(),
    ]
    for cursor in forged:
        await _assert_invalid_cursor(client, world.ehr, cursor)


async def test_tampered_cursor_is_422_invalid_cursor(client, world):
    for _ in range(3):
        await create_patient(client, world.ehr)
    cursor = await _next_cursor(client, world.ehr)
    payload, tag = _unpack(cursor)
    name, _last_id = orjson.loads(payload)
    moved = _pack(orjson.dumps([name, "00000000-0000-7000-8000-000000000000"]), tag)
    flipped_tag = _pack(payload, bytes([tag[0] ^ 1]) + tag[1:])
    for bad in (moved, flipped_tag, cursor[:-2], cursor + "AA"):
        await _assert_invalid_cursor(client, world.ehr, bad)
    ok = await client.get("/v1/patients", params={"cursor": cursor}, headers=world.ehr.headers)
    assert ok.status_code == 200


async def test_cursor_from_the_user_list_is_422_invalid_cursor_on_patients(client, world):
    users = await client.get("/v1/users", params={"limit": 1}, headers=world.admin.headers)
    assert users.status_code == 200
    cursor = users.json()["next_cursor"]
    assert cursor
    await _assert_invalid_cursor(client, world.ehr, cursor)


async def test_cursor_signed_by_another_deployment_is_422(client, world):
    from app.core.pagination import encode_cursor

    await create_patient(client, world.ehr)
    foreign = encode_cursor(lambda payload: "f" * 32, "patients", "00000000-0000-7000-8000-000000000000")
    await _assert_invalid_cursor(client, world.ehr, foreign)
