"""Errors: every one is an RFC 9457 problem, and none reveals submitted values or internals."""

from __future__ import annotations

import httpx
import pytest

from app.main import create_app
from tests.conftest import test_settings as settings_for

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    """The response is a problem+json with the status and code, and the body agrees with the status line."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_FIELDS <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"] and body["detail"]
    return body


async def test_unknown_body_field_is_422_naming_the_field(client, world):
    response = await client.post("/v1/patients", json={"display_name": "P", "dispaly_name": "typo"}, headers=world.clinician.headers)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == [{"loc": ["dispaly_name"], "message": body["errors"][0]["message"]}]
    assert body["errors"][0]["message"]


async def test_every_invalid_field_is_listed_with_its_location(client, world):
    response = await client.post(
        "/v1/patients", json={"display_name": "", "sex": "x", "birth_date": "yesterday"}, headers=world.clinician.headers
    )
    body = assert_problem(response, 422, "validation_error")
    assert sorted(e["loc"] for e in body["errors"]) == [["birth_date"], ["display_name"], ["sex"]]


async def test_malformed_json_is_400_bad_request(client, world):
    headers = {**world.clinician.headers, "Content-Type": "application/json"}
    for raw in (b'{"display_name": ', b"{'display_name': 'x'}", b"\xff\xfe"):
        response = await client.post("/v1/patients", content=raw, headers=headers)
        assert_problem(response, 400, "bad_request")


async def test_a_json_body_that_is_not_an_object_is_422(client, world):
    response = await client.post("/v1/patients", json=["display_name"], headers=world.clinician.headers)
    assert_problem(response, 422, "validation_error")


async def test_validation_error_never_echoes_the_submitted_value(client, world):
    marker = "CLINICAL-NOTE-MARKER-7f3a"
    too_long = "x" * 200 + marker
    response = await client.post("/v1/patients", json={"display_name": too_long}, headers=world.clinician.headers)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["display_name"]
    assert marker not in response.text

    bad_sex = await client.post(
        "/v1/patients", json={"display_name": "P", "sex": marker}, headers=world.clinician.headers
    )
    assert_problem(bad_sex, 422, "validation_error")
    assert marker not in bad_sex.text
    extra = await client.post("/v1/patients", json={"display_name": "P", "note": marker}, headers=world.clinician.headers)
    assert_problem(extra, 422, "validation_error")
    assert marker not in extra.text


async def test_unknown_route_is_a_404_problem(client):
    response = await client.get("/v1/no-such-thing")
    assert_problem(response, 404, "not_found")


async def test_wrong_method_is_a_405_problem_with_allow(client):
    response = await client.delete("/healthz")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_missing_token_and_bad_token_are_401_problems(client):
    assert_problem(await client.get("/v1/patients"), 401, "unauthenticated")
    bad = await client.get("/v1/patients", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(bad, 401, "unauthenticated")


async def test_refusals_are_problems(client, world):
    assert_problem(await client.get("/v1/patients", headers=world.researcher.headers), 403, "forbidden")
    missing = "00000000-0000-7000-8000-000000000000"
    assert_problem(await client.get(f"/v1/patients/{missing}", headers=world.ehr.headers), 404, "not_found")


@pytest.fixture
async def crashing_client(tmp_path):
    """A fresh app with a route that fails with an internal detail in its message."""
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'unused.db'}"))

    @app.get("/v1/test-crash")
    async def crash() -> None:
        raise RuntimeError("secret-internal-detail /srv/app/secret_module.py SELECT * FROM patient")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await app.state.engine.dispose()


async def test_unexpected_exception_is_a_500_problem_that_reveals_nothing(crashing_client):
    response = await crashing_client.get("/v1/test-crash", headers={"X-Request-ID": "crash-1"})
    assert_problem(response, 500, "internal_error")
    for secret in ("secret-internal-detail", "RuntimeError", "Traceback", "secret_module", "SELECT"):
        assert secret not in response.text
    assert response.headers["x-request-id"] == "crash-1"
