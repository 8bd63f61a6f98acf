"""FHIR in: a posted QuestionnaireResponse recorded as a measure, through the same service as /v1's measures.

Scoring, the rules, the risk flag, the webhooks and the audit are the measures service's: this module only
reads the FHIR resource (app.fhir.intake) and renders what was stored as the view renders it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import context as audit
from app.core.errors import NotFound, Unprocessable
from app.core.ids import utcnow
from app.courses import repository as courses
from app.deps import Principal
from app.fhir import intake, mapping
from app.measures import repository as measures
from app.measures import service as measure_service
from app.patients import repository as patients


async def record_response(db: AsyncConnection, principal: Principal, resource: Any, base: str) -> dict[str, Any]:
    """Record a QuestionnaireResponse of a course in reach; a collection Bundle of the stored response and its score."""
    course_id = intake.course_id(resource)
    audit.note(fhir="QuestionnaireResponse")
    try:
        course = await courses.get(db, principal, course_id)  # another organization's or caseload's course: 404 first
    except NotFound:
        audit.note(resource_type="course", resource_id=course_id)  # the refusal names the course, as the reads' do
        raise
    data = intake.measure_input(resource, course["patient_id"])
    try:
        stored = await measure_service.record(db, principal, course_id, data)
    except Unprocessable as exc:  # what only the service can tell (a future date, ...), named in FHIR terms
        errors = exc.extra.get("errors") or [{"loc": [], "message": exc.detail}]
        raise intake.refuse(intake.expression_of(errors[0].get("loc") or [], data["instrument"]), exc.detail,
                            "value") from None
    measure = await measures.get(db, course_id, stored["id"])
    patient = await patients.get(db, principal, course["patient_id"])
    entries = [mapping.questionnaire_response(measure, patient), mapping.observation(measure, patient)]
    return mapping.collection(entries, base, utcnow())
