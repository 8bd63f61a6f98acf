"""The read-only FHIR R4 view: a course as EpisodeOfCare, its $everything Bundle, and the project's CodeSystems."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from app.audit import context as audit
from app.deps import ClinicalReader, CurrentPrincipal, Db
from app.fhir import service
from app.fhir.capability import capability_statement
from app.fhir.errors import FhirJSON
from app.fhir.schemas import FhirBundle, FhirCapabilityStatement, FhirCodeSystem, FhirEpisodeOfCare, outcomes
from app.routing import api_router

PREFIX = "/fhir/r4"
router = api_router(prefix=PREFIX, tags=["fhir"], default_response_class=FhirJSON)
# No token, no audit row, no transaction (as /healthz): the statement holds no data.
public = api_router(prefix=PREFIX, tags=["fhir"], default_response_class=FhirJSON, route_class=APIRoute)
ERRORS = outcomes(401, 403, 404, 422, 429, 503)


async def _name_course(course_id: str) -> None:
    """Name the course in the audit event before anything can refuse the request, so refusals name it too."""
    audit.note(resource_type="course", resource_id=course_id)


@router.get("/EpisodeOfCare/{course_id}", response_model=FhirEpisodeOfCare, responses=ERRORS,
            dependencies=[Depends(_name_course)])
async def read_episode_of_care(course_id: str, db: Db, principal: ClinicalReader) -> FhirJSON:
    """Read a course as a FHIR R4 EpisodeOfCare (ids and codes only, never free text)."""
    resource = await service.episode_of_care(db, principal, course_id)
    return FhirJSON(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})


@router.get("/EpisodeOfCare/{course_id}/$everything", response_model=FhirBundle, responses=ERRORS,
            dependencies=[Depends(_name_course)])
async def episode_of_care_everything(course_id: str, request: Request, db: Db, principal: ClinicalReader) -> FhirJSON:
    """A course and everything recorded in it as a FHIR R4 searchset Bundle: EpisodeOfCare, Conditions for the
    focal problem areas, Encounters for sessions, a QuestionnaireResponse and an Observation per measure."""
    return FhirJSON(await service.everything(db, principal, course_id, base_url(request), str(request.url)))


@router.get("/CodeSystem/{codesystem_id}", response_model=FhirCodeSystem, responses=outcomes(401, 404, 422, 429, 503))
async def read_code_system(codesystem_id: str, _: CurrentPrincipal) -> FhirJSON:
    """Read one of the project's CodeSystems (problem areas, role dispute stages, protocols, instruments, bands)."""
    return FhirJSON(service.code_system(codesystem_id))


@public.get("/metadata", response_model=FhirCapabilityStatement)
async def capability(request: Request) -> FhirJSON:
    """The FHIR view's CapabilityStatement: resources, interactions, $everything and the token they need (no token)."""
    return FhirJSON(capability_statement(base_url(request), request.app.version))


def base_url(request: Request) -> str:
    """The FHIR view's base URL as the caller reached it (fullUrls and the statement's implementation.url)."""
    return str(request.base_url).rstrip("/") + PREFIX
