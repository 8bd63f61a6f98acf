"""The project's CodeSystems are published as valid FHIR R4 CodeSystem resources, and every project code the
view emits is one of their codes."""

from __future__ import annotations

import pytest

from app import instruments, rules
from app.fhir.codesystem import BASE, CODE_SYSTEMS
from tests.support.fhir import FHIR_JSON, validate

# domain.md, "The four problem areas"
AREAS = {"grief": "Grief", "role_dispute": "Role dispute", "role_transition": "Role transition",
         "interpersonal_deficits": "Interpersonal deficits"}


async def _read(client, actor, codesystem_id: str) -> dict:
    response = await client.get(f"/fhir/r4/CodeSystem/{codesystem_id}", headers=actor.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FHIR_JSON
    body = response.json()
    validate(body)
    return body


async def test_problem_area_code_system_has_the_four_areas_with_displays_and_definitions(client, world):
    body = await _read(client, world.clinician, "ipt-problem-area")
    assert body["url"] == BASE + "ipt-problem-area" == "https://ipt.example/fhir/CodeSystem/ipt-problem-area"
    assert (body["status"], body["content"], body["count"]) == ("active", "complete", 4)
    assert {c["code"]: c["display"] for c in body["concept"]} == AREAS
    definitions = {c["code"]: c["definition"] for c in body["concept"]}
    assert "death of someone important" in definitions["grief"]
    assert "expect different things" in definitions["role_dispute"]
    assert "last resort" in definitions["interpersonal_deficits"]


async def test_role_dispute_stages_are_published_too(client, world):
    body = await _read(client, world.researcher, "ipt-role-dispute-stage")
    assert [c["code"] for c in body["concept"]] == list(rules.ROLE_DISPUTE_STAGES)
    assert all(c["display"] and c["definition"] for c in body["concept"])


@pytest.mark.parametrize("codesystem_id", sorted(CODE_SYSTEMS))
async def test_every_project_code_system_validates(client, world, codesystem_id):
    body = await _read(client, world.ehr, codesystem_id)
    assert body["id"] == codesystem_id and body["url"] == BASE + codesystem_id


def test_severity_code_systems_hold_every_band_of_the_catalogue():
    for instrument in instruments.INSTRUMENTS.values():
        concepts = CODE_SYSTEMS[f"ipt-severity-{instrument.id}"].concepts
        assert [(c, d) for c, d, _ in concepts] == [(b.code, b.label) for b in instrument.bands]


async def test_unknown_code_system_and_no_token_are_outcomes(client, world):
    missing = await client.get("/fhir/r4/CodeSystem/nope", headers=world.clinician.headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == FHIR_JSON
    assert missing.json()["issue"][0]["code"] == "not-found"
    anonymous = await client.get("/fhir/r4/CodeSystem/ipt-problem-area")
    assert anonymous.status_code == 401 and anonymous.json()["issue"][0]["code"] == "login"
