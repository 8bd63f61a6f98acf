"""Compiled route plans answer exactly as FastAPI's own handler does: same values, same errors, same order.

The oracle is a second app on the same database whose routes keep FastAPI's handler; each request
goes to both and the answers must match (status and body).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, request_response

from app import pipeline
from app.main import create_app
from tests.support.clinic import open_course
from tests.support.world import make_world


@pytest.fixture(scope="module")
async def fastapi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The same app (same settings and keys) with every route on FastAPI's handler, in the same pipeline."""
    oracle = create_app(app.state.settings)
    routes = oracle.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, pipeline.AuditedRoute):
            routes[i] = copy.copy(route)  # the routers' routes are shared by every app: change a copy
            routes[i].app = request_response(route.audited(APIRoute.get_route_handler(route)))
    transport = httpx.ASGITransport(app=oracle, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await oracle.state.engine.dispose()


def _compiled(app: FastAPI) -> dict[tuple[str, str], bool]:
    return {(method, route.path): route.compiled for route in app.routes if isinstance(route, pipeline.AuditedRoute)
            for method in route.methods}


def test_reads_are_compiled_and_routes_with_a_body_are_not(app):
    compiled = _compiled(app)
    for path in ("/v1/courses", "/v1/courses/{course_id}", "/v1/courses/{course_id}/outcomes",
                 "/v1/courses/{course_id}/measures", "/v1/patients", "/v1/audit-events"):
        assert compiled[("GET", path)], path
    assert not compiled[("POST", "/v1/courses")]
    assert not compiled[("PATCH", "/v1/courses/{course_id}")]
    assert all(isinstance(r, APIRoute) for r in app.routes if getattr(r, "path", "").startswith("/v1/courses"))


def _comparable(response: httpx.Response) -> tuple[int, object]:
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("instance", "request_id")}
    return response.status_code, body


async def test_plans_answer_as_fastapi_does_for_valid_and_invalid_parameters(app, client, fastapi_client):
    world = await make_world(app)
    clinician, researcher = world.clinician.headers, world.researcher.headers
    cid = (await open_course(client, world.clinician))["id"]
    cases = [
        ("/v1/courses", clinician),
        ("/v1/courses?limit=1&phase=initial&open=true&protocol=ipt", clinician),
        ("/v1/courses?limit=0", clinician),
        ("/v1/courses?limit=abc&phase=bogus&open=maybe", clinician),
        ("/v1/courses?limit=201&risk_flag_open=2", clinician),
        ("/v1/courses?patient_id=" + "x" * 37, clinician),
        ("/v1/courses?cursor=" + "c" * 513, clinician),
        ("/v1/courses?cursor=not-a-cursor", clinician),
        ("/v1/courses?limit=0", {}),  # no token and a bad parameter: which wins is FastAPI's order
        ("/v1/courses?limit=0", researcher),
        (f"/v1/courses/{cid}", clinician),
        (f"/v1/courses/{cid}", researcher),
        ("/v1/courses/00000000-0000-7000-8000-000000000000", clinician),
        (f"/v1/courses/{cid}/outcomes", clinician),
        (f"/v1/courses/{cid}/measures?instrument=bogus&limit=-1", clinician),
        (f"/v1/courses/{cid}/measures?instrument=phq-9", clinician),
        ("/v1/audit-events?since=yesterday&limit=2", world.admin.headers),
        ("/v1/patients?limit=2", clinician),
        ("/v1/protocols", clinician),
    ]
    for url, headers in cases:
        planned = await client.get(url, headers=headers)
        expected = await fastapi_client.get(url, headers=headers)
        assert _comparable(planned) == _comparable(expected), url
        assert planned.status_code != 500, url
