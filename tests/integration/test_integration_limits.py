"""Limits: 413 for bodies over the limit (chunked too, answered before the body has all arrived), 429 per
caller with Retry-After (shared through Redis by several processes), and at most 200 rows a page."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from app.main import create_app
from tests.conftest import test_settings
from tests.support.live import live_server
from tests.support.redisdb import REDIS_TIMEOUT_SECONDS, REDIS_URL, redis_prefix
from tests.support.world import make_world

MIB = 1024 * 1024


async def _client_for(app) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _wait_for_fresh_window(needed_seconds: float) -> None:
    """Rate limits count in fixed one-minute windows: start where the window has room for the test."""
    remaining = 60 - time.time() % 60
    if remaining < needed_seconds:
        time.sleep(remaining + 0.05)


async def test_body_over_the_limit_with_content_length_is_413(app, client, world):
    marker = uuid.uuid4().hex
    body = json.dumps({"display_name": marker, "pad": "x" * MIB}).encode()
    headers = {**world.clinician.headers, "Content-Type": "application/json"}
    response = await client.post("/v1/patients", content=body, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    async with app.state.engine.connect() as db:
        assert await db.scalar(sa.text("SELECT count(*) FROM patient WHERE display_name = :m"), {"m": marker}) == 0
    # At the limit is not refused for its size (here it is refused for its unknown field instead).
    at_limit = json.dumps({"display_name": "x", "pad": ""}).encode()
    at_limit = at_limit[:-2] + b"x" * (MIB - len(at_limit)) + at_limit[-2:]
    assert len(at_limit) == MIB
    response = await client.post("/v1/patients", content=at_limit, headers=headers)
    assert response.status_code == 422, response.text


async def test_chunked_body_over_the_limit_is_refused_after_few_chunks(app, database_url, world):
    small = create_app(test_settings(database_url, max_body_bytes=1024, secret_key=app.state.settings.secret_key))
    consumed = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal consumed
        for _ in range(1000):
            consumed += 1
            yield b"x" * 100

    async with await _client_for(small) as http:
        response = await http.post("/v1/patients", content=body(),
                                   headers={**world.clinician.headers, "Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert consumed <= 12, f"the app read {consumed} chunks of 100 bytes before refusing a 1024-byte limit"
        ok = await http.post("/v1/patients", json={"display_name": "Small"}, headers=world.clinician.headers)
        assert ok.status_code == 201
    await small.state.engine.dispose()


def _send_slowly(base: str, authorization: str, total: int) -> tuple[int, bytes]:
    """Stream ``total`` bytes chunked in 64 KiB pieces, stopping once the server answers: (bytes sent, answer)."""
    parts = urlsplit(base)
    chunk = b"x" * (64 * 1024)
    sent, received = 0, b""
    head = (f"POST /v1/patients HTTP/1.1\r\nHost: {parts.hostname}\r\nAuthorization: {authorization}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < total:
                readable, _, _ = select.select([sock], [], [], 0.02)  # a slow client: 64 KiB every 20 ms
                if readable:
                    break
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            received += data
            head_part, _, body_part = received.partition(b"\r\n\r\n")
            length = [line for line in head_part.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if length and len(body_part) >= int(length[0].split(b":")[1]):
                break
    return sent, received


async def test_live_server_refuses_a_chunked_body_before_it_has_all_been_sent(live_url, world):
    """8 MiB sent slowly without Content-Length: the 413 arrives after about the first MiB."""
    total = 8 * MIB
    sent, received = await asyncio.to_thread(_send_slowly, live_url, world.clinician.headers["Authorization"], total)
    assert received.startswith(b"HTTP/1.1 413"), received[:300]
    assert json.loads(received.partition(b"\r\n\r\n")[2])["code"] == "payload_too_large"
    assert sent < total, "the client had to send everything before the server answered"
    assert sent <= 4 * MIB, f"the server answered only after {sent} bytes"


async def test_live_server_refuses_a_chunked_httpx_generator_body(live_url, world):
    def body():
        for _ in range(32):
            yield b"x" * (64 * 1024)

    def post() -> httpx.Response:
        with httpx.Client(base_url=live_url, timeout=30) as http:
            return http.post("/v1/patients", content=body(),
                             headers={**world.clinician.headers, "Content-Type": "application/json"})

    try:
        response = await asyncio.to_thread(post)
    except httpx.TransportError as exc:  # the server may close before the client has sent all
        pytest.fail(f"no 413 answer reached the client: {exc!r}")
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_rate_limit_is_per_caller_with_retry_after(app, database_url, world):
    limited = create_app(test_settings(database_url, rate_limit_per_minute=5, secret_key=app.state.settings.secret_key))
    _wait_for_fresh_window(5)
    async with await _client_for(limited) as http:
        for _ in range(5):
            assert (await http.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
        refused = await http.get("/v1/patients", headers=world.clinician.headers)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Another caller (and the same person's colleague) is unaffected.
        assert (await http.get("/v1/patients", headers=world.clinician2.headers)).status_code == 200
        assert (await http.get("/v1/patients", headers=world.ehr.headers)).status_code == 200
        # The refused caller stays refused within the window.
        assert (await http.post("/v1/patients", json={"display_name": "x"}, headers=world.clinician.headers)).status_code == 429
    await limited.state.engine.dispose()


async def test_page_size_over_200_is_a_validation_error(client, world):
    for limit, status in ((200, 200), (201, 422), (0, 422), (-1, 422)):
        response = await client.get(f"/v1/patients?limit={limit}", headers=world.clinician.headers)
        assert response.status_code == status, (limit, response.text)
        if status == 422:
            assert response.json()["code"] == "validation_error"
    response = await client.get("/v1/audit-events?limit=500", headers=world.admin.headers)
    assert response.status_code == 422


async def test_redis_shares_the_rate_limit_between_two_server_processes(pg_app, postgres_url):
    """Two API processes on one PostgreSQL share one limit through Redis (the scale-out setup)."""
    app, database_url = pg_app, postgres_url
    world = await make_world(app)
    caller = world.clinician
    secret = app.state.settings.secret_key
    with redis_prefix() as prefix:
        env = {"IPT_REDIS_URL": REDIS_URL, "IPT_REDIS_KEY_PREFIX": prefix,
               "IPT_REDIS_TIMEOUT_SECONDS": str(REDIS_TIMEOUT_SECONDS), "IPT_RATE_LIMIT_PER_MINUTE": "6"}
        with ExitStack() as stack, ThreadPoolExecutor(2) as pool:  # start both servers at once
            first, second = pool.map(stack.enter_context, [live_server(database_url, secret, **env) for _ in range(2)])
            _wait_for_fresh_window(5)
            statuses = []
            async with httpx.AsyncClient(timeout=30) as http:
                for _ in range(3):
                    for base in (first, second):
                        statuses.append((await http.get(f"{base}/v1/patients", headers=caller.headers)).status_code)
                assert statuses == [200] * 6
                for base in (first, second):
                    refused = await http.get(f"{base}/v1/patients", headers=caller.headers)
                    assert refused.status_code == 429, refused.text
                    assert refused.json()["code"] == "rate_limited"
                    assert 1 <= int(refused.headers["retry-after"]) <= 60
                other = await http.get(f"{second}/v1/patients", headers=world.clinician2.headers)
                assert other.status_code == 200
