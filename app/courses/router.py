"""Courses: the contract, its phases, extensions, and the protocol catalogue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from app import rules
from app.core.http import JSON, optional_version, required_version, resource
from app.core.openapi import AUTH, errors, if_match
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.courses import repository, service
from app.courses.models import CourseExtension, CourseTransition
from app.courses.schemas import (
    CourseCreate,
    CoursePublic,
    CourseUpdate,
    ExtensionCreate,
    ExtensionPublic,
    Phase,
    ProtocolId,
    ProtocolPublic,
    TransitionCreate,
    TransitionPublic,
)
from app.deps import ClinicalReader, ClinicalWriter, CurrentPrincipal, Db
from app.routing import api_router

router = api_router(tags=["courses"])
RULES = errors(*AUTH, 400, 404, 409, 412)


@router.get("/v1/protocols", response_model=list[ProtocolPublic], responses=errors(401, 503))
async def list_protocols(_: CurrentPrincipal) -> JSON:
    """The protocol catalogue: planned range, initial and termination limits, extension cap."""
    return JSON([p.as_dict() for p in rules.PROTOCOLS.values()])


@router.post("/v1/courses", status_code=201, response_model=CoursePublic, responses=errors(*AUTH, 400, 404, 409))
async def create_course(body: CourseCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Open a course of IPT for a patient; one open course per patient (S8)."""
    course = await service.create(db, principal, body.model_dump())
    return resource(service.present(course), status=201, headers={"Location": f"/v1/courses/{course['id']}"})


@router.get("/v1/courses", response_model=ListOf[CoursePublic], responses=errors(*AUTH))
async def list_courses(
    db: Db,
    principal: ClinicalReader,
    page: Annotated[Page, Depends(page_params("courses"))],
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    therapist_id: Annotated[str | None, Query(max_length=36)] = None,
    phase: Phase | None = None,
    protocol: ProtocolId | None = None,
    open: bool | None = None,
    risk_flag_open: bool | None = None,
) -> JSON:
    """List courses in the caller's reach, oldest first, with optional filters."""
    filters = {"patient_id": patient_id, "therapist_id": therapist_id, "phase": phase, "protocol": protocol,
               "open": open, "risk_flag_open": risk_flag_open}
    result = await repository.list_page(db, principal, page, filters)
    result["data"] = service.present_page(result["data"])
    return JSON(result)


@router.get("/v1/courses/{course_id}", response_model=CoursePublic, responses=errors(*AUTH, 404))
async def get_course(course_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Read a course with its progress and advisories."""
    return resource(service.present(await repository.get(db, principal, course_id)))


@router.patch("/v1/courses/{course_id}", response_model=CoursePublic, responses={**RULES, **errors(428)}, openapi_extra=if_match())
async def update_course(course_id: str, body: CourseUpdate, request: Request, db: Db, principal: ClinicalWriter) -> JSON:
    """Change planned sessions, therapist or diagnosis; needs If-Match."""
    version = required_version(request)
    return resource(service.present(await service.update(db, principal, course_id, version, body.changes())))


@router.post("/v1/courses/{course_id}/transitions", response_model=CoursePublic, responses=RULES, openapi_extra=if_match(required=False))
async def create_transition(course_id: str, body: TransitionCreate, request: Request, db: Db, principal: ClinicalWriter) -> JSON:
    """Move the course to its next phase (P1-P7); returns the updated course."""
    course = await service.transition(db, principal, course_id, body.model_dump(), optional_version(request))
    return resource(service.present(course))


@router.get("/v1/courses/{course_id}/transitions", response_model=ListOf[TransitionPublic], responses=errors(*AUTH, 404))
async def list_transitions(
    course_id: str, db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("transitions"))]
) -> JSON:
    """The course's phase history: from, to, when, by whom."""
    await repository.get(db, principal, course_id)
    return JSON(await repository.history(db, CourseTransition, repository.TRANSITION_PUBLIC, course_id, page))


@router.post("/v1/courses/{course_id}/extensions", response_model=CoursePublic, responses=RULES, openapi_extra=if_match(required=False))
async def create_extension(course_id: str, body: ExtensionCreate, request: Request, db: Db, principal: ClinicalWriter) -> JSON:
    """Approve extra sessions (S9): supervisors and integrations only; returns the updated course."""
    course = await service.extend(db, principal, course_id, body.model_dump(), optional_version(request))
    return resource(service.present(course))


@router.get("/v1/courses/{course_id}/extensions", response_model=ListOf[ExtensionPublic], responses=errors(*AUTH, 404))
async def list_extensions(
    course_id: str, db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("extensions"))]
) -> JSON:
    """The extensions approved for the course."""
    await repository.get(db, principal, course_id)
    return JSON(await repository.history(db, CourseExtension, repository.EXTENSION_PUBLIC, course_id, page))
