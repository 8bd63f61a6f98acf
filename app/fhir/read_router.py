"""Reads of the FHIR view's other resources: what an EpisodeOfCare or a $everything Bundle points at."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.deps import ClinicalReader, Db
from app.fhir import reads
from app.fhir.errors import FhirJSON
from app.fhir.router import ERRORS, PREFIX
from app.fhir.schemas import FhirResource
from app.routing import api_router

router = api_router(prefix=PREFIX, tags=["fhir"], default_response_class=FhirJSON)


def _read(resource_type: str, read: Callable[..., Awaitable[dict[str, Any]]], summary: str) -> None:
    """Add ``GET /fhir/r4/{resource_type}/{id}``, answered by ``read`` with the resource's version as ETag."""

    async def read_resource(resource_id: str, db: Db, principal: ClinicalReader) -> FhirJSON:
        resource = await read(db, principal, resource_id)
        return FhirJSON(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})

    read_resource.__doc__ = summary
    router.add_api_route(f"/{resource_type}/{{resource_id}}", read_resource, methods=["GET"], response_model=FhirResource,
                         responses=ERRORS, name=f"read_{resource_type.lower()}", summary=f"Read a {resource_type}")


_read("Patient", reads.patient, "A patient in the caller's reach: id, the EHR's identifier, gender, birth date (never a name).")
_read("Practitioner", reads.practitioner, "A user of the caller's organization as a Practitioner (id and active only).")
_read("Condition", reads.condition, "A focal problem area of a course's formulation as a Condition.")
_read("Encounter", reads.encounter, "A session of a course as an Encounter.")
_read("QuestionnaireResponse", reads.questionnaire_response, "One administration of a measure as a QuestionnaireResponse.")
_read("Observation", reads.observation, "The score of one administration of a measure as an Observation.")
_read("Group", reads.group, "A group IPT group in the caller's reach as a Group of its members (no name).")
