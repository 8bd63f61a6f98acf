"""Every reference the FHIR view emits resolves: inside the same Bundle, or by a read on this server that
answers the very resource; the reads keep the view's reach (another organization's or caseload's ids are 404)."""

from __future__ import annotations

import pytest

from tests.support.fhir import FHIR_JSON, RecordedCourse, record_course, references, validate
from tests.support.world import make_world

READ_TYPES = ("Patient", "Practitioner", "Condition", "Encounter", "QuestionnaireResponse", "Observation")


@pytest.fixture(scope="module")
async def recorded(app, client) -> RecordedCourse:
    return await record_course(client, await make_world(app))


async def _read(client, headers, reference: str, expect: int = 200) -> dict:
    response = await client.get(f"/fhir/r4/{reference}", headers=headers)
    assert response.status_code == expect, (reference, response.text)
    assert response.headers["content-type"] == FHIR_JSON
    return response.json()


async def test_every_reference_of_every_answer_resolves(client, recorded):
    """Walk the EpisodeOfCare and its $everything, then every resource reached, until nothing new appears."""
    headers = recorded.world.clinician.headers
    course_id = recorded.course["id"]
    everything = await _read(client, headers, f"EpisodeOfCare/{course_id}/$everything")
    in_bundle = {e["fullUrl"].split("/fhir/r4/", 1)[1]: e["resource"] for e in everything["entry"]}
    pending = [r for resource in [*in_bundle.values(), await _read(client, headers, f"EpisodeOfCare/{course_id}")]
               for r in references(resource)]
    resolved: dict[str, dict] = {}
    while pending:
        target = pending.pop()["reference"]
        if target in resolved:
            continue
        resource = await _read(client, headers, target)
        assert f"{resource['resourceType']}/{resource['id']}" == target
        validate(resource)
        if target in in_bundle:
            assert resource == in_bundle[target], f"{target} reads differently from its Bundle entry"
        resolved[target] = resource
        pending += references(resource)
    kinds = {target.split("/")[0] for target in resolved}
    assert kinds == {"Patient", "Practitioner", "EpisodeOfCare", "Condition", "Encounter", "QuestionnaireResponse"}
    # every resource of the Bundle reads back as it is there, Observations (which nothing references) included
    for target, resource in in_bundle.items():
        if target not in resolved:
            assert await _read(client, headers, target) == resource


async def test_patient_and_practitioner_carry_no_name(client, recorded):
    headers = recorded.world.clinician.headers
    patient = await _read(client, headers, f"Patient/{recorded.patient['id']}")
    practitioner = await _read(client, headers, f"Practitioner/{recorded.world.clinician.id}")
    assert recorded.marker not in str(patient) and "name" not in patient and "name" not in practitioner
    assert patient["identifier"][0]["value"] == recorded.patient["external_id"]
    assert practitioner["active"] is True


async def test_reads_keep_the_reach(app, client, recorded):
    """Another organization, or a clinician without the course, gets 404 for each id; so do made-up ids."""
    headers = recorded.world.clinician.headers
    everything = await _read(client, headers, f"EpisodeOfCare/{recorded.course['id']}/$everything")
    targets = {e["fullUrl"].split("/fhir/r4/", 1)[1] for e in everything["entry"]
               if e["resource"]["resourceType"] in READ_TYPES}
    targets |= {f"Patient/{recorded.patient['id']}", f"Practitioner/{recorded.world.clinician.id}"}
    other = await make_world(app)
    for target in sorted(targets):
        outcome = await _read(client, other.clinician.headers, target, 404)
        assert outcome["resourceType"] == "OperationOutcome"
        if not target.startswith("Practitioner/"):  # a colleague's id is no secret inside the organization
            await _read(client, recorded.world.clinician2.headers, target, 404)
    for made_up in ("Observation/" + next(iter(recorded.measures.values()))["id"], "Condition/nothing-grief", "Encounter/nope",
                    "Patient/nope", "Practitioner/nope", "QuestionnaireResponse/nope", "Condition/x"):
        await _read(client, headers, made_up, 404)
