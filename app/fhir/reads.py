"""Reads of every resource the FHIR view points at, so each reference it emits resolves on this server.

A session (Encounter), a measure (QuestionnaireResponse, Observation) or a formulation's problem
area (Condition) is found by its id, then its course is read in the caller's reach: outside it, or
in another organization, the answer is the same 404 as for an id that does not exist. A Patient is
read in the caller's reach as /v1 reads it; a Practitioner is any user of the caller's organization
(a clinician sees who else treats in it, as the course lists already show therapist ids).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import context as audit
from app.core.errors import NotFound
from app.courses import repository as courses
from app.deps import Principal
from app.fhir import mapping
from app.formulations import repository as formulations
from app.formulations.models import Formulation
from app.groups import repository as groups
from app.identity import repository as identity
from app.measures import repository as measures
from app.measures.models import Measure
from app.patients import repository as patients
from app.rules import PROBLEM_AREAS
from app.sessions import repository as sessions
from app.sessions.models import TherapySession

OBSERVATION_SUFFIX = "-total"  # an Observation's id is its measure's id and this (mapping.observation)
_ID_LENGTH = 36  # the project's ids (UUID text); a Condition's id is its formulation's id, "-" and the area


async def _course_of(db: AsyncConnection, principal: Principal, table: Any, row_id: str, what: str) -> tuple[dict, dict]:
    """The course holding row ``row_id`` of ``table``, in the caller's reach (else 404), and its patient."""
    course_id = (await db.execute(sa.select(table.course_id).where(table.id == row_id))).scalar_one_or_none()
    if course_id is None:
        raise NotFound(f"No such {what}.")
    course = await courses.get(db, principal, course_id)
    audit.note(resource_type="course", resource_id=course_id, patient_id=course["patient_id"], fhir=what)
    return course, await patients.get(db, principal, course["patient_id"])


async def patient(db: AsyncConnection, principal: Principal, patient_id: str) -> dict[str, Any]:
    """A patient in the caller's reach as a Patient."""
    row = await patients.get(db, principal, patient_id)
    audit.note(resource_type="patient", resource_id=patient_id, patient_id=patient_id, fhir="Patient")
    return mapping.patient(row)


async def practitioner(db: AsyncConnection, principal: Principal, user_id: str) -> dict[str, Any]:
    """A user of the caller's organization as a Practitioner."""
    audit.note(fhir="Practitioner")
    return mapping.practitioner(await identity.get_user(db, principal.organization_id, user_id))


async def encounter(db: AsyncConnection, principal: Principal, session_id: str) -> dict[str, Any]:
    """A session as an Encounter."""
    course, patient_row = await _course_of(db, principal, TherapySession, session_id, "Encounter")
    return mapping.encounter(await sessions.get(db, course["id"], session_id), patient_row)


async def questionnaire_response(db: AsyncConnection, principal: Principal, measure_id: str) -> dict[str, Any]:
    """A measure's answers as a QuestionnaireResponse."""
    course, patient_row = await _course_of(db, principal, Measure, measure_id, "QuestionnaireResponse")
    return mapping.questionnaire_response(await measures.get(db, course["id"], measure_id), patient_row)


async def observation(db: AsyncConnection, principal: Principal, observation_id: str) -> dict[str, Any]:
    """A measure's score as an Observation."""
    measure_id = observation_id.removesuffix(OBSERVATION_SUFFIX)
    if measure_id == observation_id:
        raise NotFound("No such Observation.")
    course, patient_row = await _course_of(db, principal, Measure, measure_id, "Observation")
    return mapping.observation(await measures.get(db, course["id"], measure_id), patient_row)


async def condition(db: AsyncConnection, principal: Principal, condition_id: str) -> dict[str, Any]:
    """A focal problem area of a formulation as a Condition."""
    formulation_id, area = condition_id[:_ID_LENGTH], condition_id[_ID_LENGTH + 1:].replace("-", "_")
    if area not in PROBLEM_AREAS:
        raise NotFound("No such Condition.")
    course, patient_row = await _course_of(db, principal, Formulation, formulation_id, "Condition")
    found = [c for c in mapping.conditions(await formulations.get_formulation(db, course["id"]), patient_row)
             if c["id"] == condition_id]
    if not found:
        raise NotFound("No such Condition.")
    return found[0]


async def group(db: AsyncConnection, principal: Principal, group_id: str) -> dict[str, Any]:
    """A group IPT group in the caller's reach as a Group of its members."""
    found = await groups.get(db, principal, group_id)
    audit.note(resource_type="group", resource_id=group_id, fhir="Group")
    return mapping.group(found, await groups.members(db, group_id))
