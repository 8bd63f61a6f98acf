"""A course with everything the FHIR view maps, recorded through the API, and checks for FHIR R4 output."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from tests.support.measures import gad7, phq9
from tests.support.world import Actor, World, create_patient

FHIR_JSON = "application/fhir+json"
MSPSS_ITEMS = [4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 3]  # mean 4.25: moderate support

# The required bindings (FHIR R4) of the coded elements the view fills; the R4B models check
# structure, cardinality and datatypes but not these value sets, so the tests do.
REQUIRED = {
    ("EpisodeOfCare", "status"): {"planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error"},
    ("Encounter", "status"): {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                              "entered-in-error", "unknown"},
    ("QuestionnaireResponse", "status"): {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
    ("Observation", "status"): {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                                "entered-in-error", "unknown"},
    ("CodeSystem", "status"): {"draft", "active", "retired", "unknown"},
    ("CodeSystem", "content"): {"not-present", "example", "fragment", "complete", "supplement"},
    ("Bundle", "type"): {"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                         "history", "searchset", "collection"},
}
CONDITION_CLINICAL = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
CONDITION_VERIFICATION = {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}


@dataclass
class RecordedCourse:
    """What was recorded, to compare the FHIR view with."""

    world: World
    marker: str
    patient: dict
    course: dict
    sessions: list[dict]
    measures: dict[str, dict]


async def _post(client: Any, actor: Actor, url: str, body: dict, expect: int = 201) -> dict:
    response = await client.post(url, json=body, headers=actor.headers)
    assert response.status_code == expect, response.text
    return response.json()


async def record_course(client: Any, world: World) -> RecordedCourse:
    """A clinician's course with attended and missed sessions in person and by video, an agreed formulation
    (primary role dispute at impasse, secondary grief), PHQ-9 with a positive risk item, GAD-7, MSPSS and a
    total-only BDI-II; free text everywhere it can go carries a marker that must never reach the FHIR view."""
    actor = world.clinician
    marker = f"LEAKMARK{uuid.uuid4().hex[:10]}"
    patient = await create_patient(client, actor, display_name=f"Ada {marker}", external_id=f"EHR-{uuid.uuid4().hex[:12]}")
    start = date.today() - timedelta(days=30)
    on = lambda days: (start + timedelta(days=days)).isoformat()
    course = await _post(client, actor, "/v1/courses", {"patient_id": patient["id"], "protocol": "ipt",
                                                        "started_on": start.isoformat(), "diagnosis": f"F32.1 {marker}"})
    url = f"/v1/courses/{course['id']}"
    sessions = [
        await _post(client, actor, f"{url}/sessions", {"held_on": on(1), "attendance": "attended", "modality": "in_person",
                                                      "duration_minutes": 50, "problem_areas_addressed": ["role_dispute"],
                                                      "note": f"Talked about the partner. {marker}"}),
        await _post(client, actor, f"{url}/sessions", {"held_on": on(2), "attendance": "missed", "modality": "video",
                                                      "note": f"Did not log in. {marker}"}),
        await _post(client, actor, f"{url}/sessions", {"held_on": on(3), "attendance": "attended", "modality": "video",
                                                      "duration_minutes": 45, "note": marker}),
    ]
    formulation = {
        "diagnosis": f"F32.1 {marker}", "summary": f"Low mood since the rows began. {marker}", "status": "agreed",
        "problem_areas": [
            {"area": "role_dispute", "focal": True, "primary": True,
             "details": {"with_whom": f"partner {marker}", "stage": "impasse"}, "goals": [{"text": f"Talk again {marker}"}]},
            {"area": "grief", "focal": True, "primary": False,
             "details": {"deceased_relationship": f"mother {marker}"}, "goals": [{"text": marker}]},
        ],
    }
    response = await client.put(f"{url}/formulation", json=formulation, headers=actor.headers)
    assert response.status_code == 201, response.text
    await _post(client, actor, f"{url}/inventory", {"label": f"J {marker}", "relationship": "partner", "ring": 1,
                                                   "difficulties": marker})
    measures = {
        "phq-9": await _post(client, actor, f"{url}/measures", {"instrument": "phq-9", "administered_on": on(1),
                                                               "items": phq9(12, item9=1), "session_id": sessions[0]["id"]}),
        "gad-7": await _post(client, actor, f"{url}/measures", {"instrument": "gad-7", "administered_on": on(1),
                                                               "items": gad7(9)}),
        "mspss": await _post(client, actor, f"{url}/measures", {"instrument": "mspss", "administered_on": on(3),
                                                               "items": MSPSS_ITEMS, "session_id": sessions[2]["id"]}),
        "bdi-ii": await _post(client, actor, f"{url}/measures", {"instrument": "bdi-ii", "administered_on": on(3),
                                                                "total": 22}),
    }
    await _post(client, actor, f"{url}/risk-acknowledgements", {"measure_id": measures["phq-9"]["id"],
                                                                "note": f"Safety plan agreed. {marker}"})
    return RecordedCourse(world, marker, patient, course, sessions, measures)


def validate(resource: dict) -> Any:
    """Parse a resource with the FHIR R4B model of its type (structure, cardinality, datatypes, no unknown
    elements), then check the required value sets the models leave unchecked; returns the model."""
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    for (resource_type, element), allowed in REQUIRED.items():
        if resource["resourceType"] == resource_type:
            assert resource[element] in allowed, f"{resource_type}.{element} {resource[element]!r} is not in R4's value set"
    if resource["resourceType"] == "Condition":
        assert _code(resource["clinicalStatus"]) in CONDITION_CLINICAL
        assert _code(resource["verificationStatus"]) in CONDITION_VERIFICATION
    if resource["resourceType"] == "Bundle":
        for entry in resource["entry"]:
            validate(entry["resource"])
    return model


def _code(concept: dict) -> str:
    return concept["coding"][0]["code"]


def references(node: Any) -> list[dict]:
    """Every Reference (an object with a ``reference``) anywhere inside a resource."""
    found: list[dict] = []
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            found.append(node)
        for value in node.values():
            found += references(value)
    elif isinstance(node, list):
        for value in node:
            found += references(value)
    return found


def by_type(bundle: dict) -> dict[str, list[dict]]:
    """The Bundle's resources grouped by resourceType, in Bundle order."""
    grouped: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        grouped.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return grouped


def coding(concept: dict, system: str) -> dict:
    """The one coding of ``concept`` in ``system``."""
    matches = [c for c in concept["coding"] if c["system"] == system]
    assert len(matches) == 1, f"expected one {system} coding in {concept}"
    return matches[0]
