"""Request ids, probes and CORS: what every client sees around the resources."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from app.main import create_app
from tests.conftest import test_settings as settings_for
from tests.support.world import bearer

GENERATED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# --- X-Request-ID -----------------------------------------------------------------------------------

async def test_sane_request_id_is_echoed(client):
    for sent in ("abc-123", "req_2026.11.26:0001", "A" * 128):
        response = await client.get("/healthz", headers={"X-Request-ID": sent})
        assert response.headers["x-request-id"] == sent


async def test_insane_request_id_is_replaced_with_a_fresh_one(client):
    for sent in ("x" * 300, "has spaces in it", "new\tline", "<script>", ""):
        response = await client.get("/healthz", headers={"X-Request-ID": sent})
        echoed = response.headers["x-request-id"]
        assert echoed != sent
        assert GENERATED_ID.match(echoed)


async def test_request_id_is_generated_when_none_is_sent_and_differs_per_request(client):
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert GENERATED_ID.match(first) and GENERATED_ID.match(second)
    assert first != second


async def test_every_response_carries_a_request_id(client, world):
    responses = [
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/v1/patients"),  # 401
        await client.get("/v1/patients", headers=world.researcher.headers),  # 403
        await client.get("/v1/nowhere"),  # 404
        await client.put("/healthz"),  # 405
        await client.post("/v1/patients", json={"x": 1}, headers=world.clinician.headers),  # 422
        await client.post(
            "/v1/patients", content=b"{", headers={**world.clinician.headers, "Content-Type": "application/json"}
        ),  # 400
        await client.post("/v1/patients", json={"display_name": "P"}, headers=world.clinician.headers),  # 201
    ]
    assert sorted(r.status_code for r in responses) == [200, 200, 201, 400, 401, 403, 404, 405, 422]
    for response in responses:
        assert GENERATED_ID.match(response.headers.get("x-request-id", "")), response.status_code


# --- probes -------------------------------------------------------------------------------------------

async def test_healthz_answers_200_without_a_token(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_answers(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.fixture
async def unreachable_client():
    """An app whose PostgreSQL is on a port nothing listens on."""
    app = create_app(settings_for("postgresql://postgres@127.0.0.1:1/ipt"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield app, http
    await app.state.engine.dispose()


async def test_readyz_is_503_unavailable_with_retry_after_when_the_database_is_unreachable(unreachable_client):
    _, http = unreachable_client
    started = time.monotonic()
    response = await http.get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert "x-request-id" in response.headers
    assert (await http.get("/healthz")).status_code == 200


async def test_a_resource_route_is_503_not_500_when_the_database_is_unreachable(unreachable_client):
    app, http = unreachable_client
    headers = bearer(app, "00000000-0000-7000-8000-000000000001", "user", "00000000-0000-7000-8000-000000000002",
                     ["clinical:read"])
    started = time.monotonic()
    response = await http.get("/v1/patients", headers=headers)
    assert time.monotonic() - started < 8
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert "retry-after" in response.headers
    assert "127.0.0.1" not in response.text and "psycopg" not in response.text.lower()


# --- CORS ---------------------------------------------------------------------------------------------

ALLOWED = "https://app.example"


@pytest.fixture
async def cors_client(tmp_path):
    """An app that allows one browser origin."""
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'unused.db'}", cors_origins=[ALLOWED]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http
    await app.state.engine.dispose()


@pytest.fixture
async def default_client(tmp_path):
    """An app with the default settings: no CORS origins."""
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'unused.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http
    await app.state.engine.dispose()


def _preflight(origin: str, method: str = "PATCH") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, if-match",
    }


async def test_preflight_from_an_allowed_origin_is_allowed(cors_client):
    response = await cors_client.options("/v1/patients/some-id", headers=_preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert "if-match" in response.headers["access-control-allow-headers"].lower()


async def test_preflight_from_another_origin_is_not_allowed(cors_client):
    response = await cors_client.options("/v1/patients/some-id", headers=_preflight("https://evil.example"))
    assert response.status_code >= 400
    assert "access-control-allow-origin" not in response.headers


async def test_simple_request_exposes_headers_only_to_the_allowed_origin(cors_client):
    allowed = await cors_client.get("/healthz", headers={"Origin": ALLOWED})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    other = await cors_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_default_settings_send_no_cors_headers(default_client):
    preflight = await default_client.options("/v1/patients", headers=_preflight(ALLOWED, "POST"))
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    assert preflight.status_code == 405
    simple = await default_client.get("/healthz", headers={"Origin": ALLOWED})
    assert not any(name.startswith("access-control-") for name in simple.headers)
