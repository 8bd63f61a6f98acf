"""FHIR view use cases: read a course in the caller's reach and everything recorded in it, then map it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import context as audit
from app.core.errors import NotFound
from app.core.ids import utcnow
from app.courses import repository as courses
from app.deps import Principal
from app.fhir import codesystem, mapping
from app.formulations import repository as formulations
from app.measures import repository as measures
from app.patients import repository as patients
from app.sessions import repository as sessions


async def _course(db: AsyncConnection, principal: Principal, course_id: str, view: str) -> tuple[dict, dict, dict | None]:
    """The course in reach (404 outside it), its patient and its formulation."""
    course = await courses.get(db, principal, course_id)
    audit.note(patient_id=course["patient_id"], fhir=view)
    patient = await patients.get(db, principal, course["patient_id"])
    return course, patient, await formulations.get_formulation(db, course_id)


async def episode_of_care(db: AsyncConnection, principal: Principal, course_id: str) -> dict[str, Any]:
    """The course as an EpisodeOfCare."""
    course, patient, formulation = await _course(db, principal, course_id, "EpisodeOfCare")
    return mapping.episode_of_care(course, patient, formulation)


async def everything(db: AsyncConnection, principal: Principal, course_id: str, base: str, self_url: str) -> dict[str, Any]:
    """The course's Bundle: EpisodeOfCare, Conditions, Encounters, then each measure's QuestionnaireResponse and Observation."""
    course, patient, formulation = await _course(db, principal, course_id, "$everything")
    resources = [mapping.episode_of_care(course, patient, formulation), *mapping.conditions(formulation, patient)]
    resources += [mapping.encounter(s, patient) for s in await sessions.all_of_course(db, course_id)]
    for measure in await measures.chronological(db, course_id):
        resources += [mapping.questionnaire_response(measure, patient), mapping.observation(measure, patient)]
    audit.note(entries=len(resources))
    return mapping.bundle(resources, base, self_url, utcnow())


def code_system(codesystem_id: str) -> dict[str, Any]:
    """One of the project's CodeSystems, or 404."""
    found = codesystem.CODE_SYSTEMS.get(codesystem_id)
    if found is None:
        raise NotFound("No such CodeSystem.")
    return found.resource()
