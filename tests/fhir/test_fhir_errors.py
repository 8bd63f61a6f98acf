"""Errors of the FHIR view are OperationOutcomes with the right status, and refusals are still audited."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.fhir import service
from tests.support.clinic import open_course
from tests.support.fhir import FHIR_JSON, validate

PATHS = ("/fhir/r4/EpisodeOfCare/{id}", "/fhir/r4/EpisodeOfCare/{id}/$everything")


def _outcome(response: httpx.Response, status: int, issue: str, code: str) -> dict:
    """Assert an OperationOutcome answer: status, media type, one error issue with the FHIR type and our code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == FHIR_JSON
    body = response.json()
    validate(body)
    [only] = body["issue"]
    assert (only["severity"], only["code"]) == ("error", issue)
    assert only["details"]["coding"] == [{"system": "https://ipt.example/problems", "code": code}]
    assert only["details"]["text"]
    return body


async def _audit_event(app: FastAPI, response: httpx.Response) -> dict[str, Any]:
    async with app.state.engine.connect() as db:
        rows = (await db.execute(sa.text("SELECT * FROM audit_event WHERE request_id = :r"),
                                 {"r": response.headers["x-request-id"]})).mappings().all()
    assert len(rows) == 1
    return dict(rows[0])


@pytest.mark.parametrize("path", PATHS)
async def test_another_organizations_course_is_a_not_found_outcome_and_is_audited(app, client, world, other_world, path):
    course = await open_course(client, other_world.clinician)
    for actor in (world.ehr, world.supervisor, world.clinician):
        response = await client.get(path.format(id=course["id"]), headers=actor.headers)
        _outcome(response, 404, "not-found", "not_found")
    event = await _audit_event(app, response)
    assert (event["action"], event["outcome"], event["resource_type"]) == ("denied", 404, "course")
    assert event["resource_id"] == course["id"]
    assert event["patient_id"] is None  # another organization's patient is never named


@pytest.mark.parametrize("path", PATHS)
async def test_another_clinicians_course_is_a_not_found_outcome(client, world, path):
    course = await open_course(client, world.clinician)
    _outcome(await client.get(path.format(id=course["id"]), headers=world.clinician2.headers), 404, "not-found", "not_found")
    assert (await client.get(path.format(id=course["id"]), headers=world.clinician.headers)).status_code == 200


@pytest.mark.parametrize("path", PATHS)
async def test_no_token_is_a_login_outcome_with_the_bearer_challenge(app, client, world, path):
    course = await open_course(client, world.clinician)
    response = await client.get(path.format(id=course["id"]))
    _outcome(response, 401, "login", "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    event = await _audit_event(app, response)
    assert (event["action"], event["outcome"], event["resource_type"]) == ("denied", 401, "course")
    bad = await client.get(path.format(id=course["id"]), headers={"Authorization": "Bearer not-a-token"})
    _outcome(bad, 401, "login", "unauthenticated")


@pytest.mark.parametrize("path", PATHS)
async def test_a_researcher_is_a_forbidden_outcome_and_is_audited_with_the_course(app, client, world, path):
    course = await open_course(client, world.clinician)
    response = await client.get(path.format(id=course["id"]), headers=world.researcher.headers)
    _outcome(response, 403, "forbidden", "forbidden")
    event = await _audit_event(app, response)
    assert (event["action"], event["outcome"], event["resource_type"]) == ("denied", 403, "course")
    assert (event["resource_id"], event["patient_id"]) == (course["id"], course["patient_id"])


async def test_a_successful_read_is_audited_against_the_course_and_its_patient(app, client, world):
    course = await open_course(client, world.clinician)
    response = await client.get(f"/fhir/r4/EpisodeOfCare/{course['id']}/$everything", headers=world.clinician.headers)
    assert response.status_code == 200
    event = await _audit_event(app, response)
    assert (event["action"], event["outcome"], event["resource_type"]) == ("read", 200, "course")
    assert (event["resource_id"], event["patient_id"]) == (course["id"], course["patient_id"])


async def test_unknown_fhir_paths_and_methods_answer_outcomes_while_v1_keeps_problems(client, world):
    _outcome(await client.get("/fhir/r4/Patient/x", headers=world.clinician.headers), 404, "not-found", "not_found")
    _outcome(await client.get("/fhir/r4/EpisodeOfCare/no-such-course", headers=world.clinician.headers),
             404, "not-found", "not_found")
    _outcome(await client.delete("/fhir/r4/EpisodeOfCare/x", headers=world.clinician.headers),
             405, "not-supported", "method_not_allowed")
    v1 = await client.get("/v1/courses/no-such-course", headers=world.clinician.headers)
    assert v1.status_code == 404 and v1.headers["content-type"] == "application/problem+json"


async def test_an_unexpected_error_is_an_exception_outcome_that_says_nothing_internal(app, world, monkeypatch):
    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "everything", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        course = await open_course(http, world.clinician)
        response = await http.get(f"/fhir/r4/EpisodeOfCare/{course['id']}/$everything", headers=world.clinician.headers)
    body = _outcome(response, 500, "exception", "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["issue"][0]["details"]["text"]
    assert response.headers["x-request-id"]
