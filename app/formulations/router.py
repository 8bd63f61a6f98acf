"""The formulation, interpersonal inventory and timeline of a course."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from app.core.errors import NotFound
from app.core.http import JSON, optional_version, required_version, resource
from app.core.openapi import AUTH, errors, if_match
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.courses import repository as courses
from app.deps import ClinicalReader, ClinicalWriter, Db
from app.formulations import repository, service
from app.formulations.schemas import (
    FormulationPublic,
    FormulationPut,
    InventoryCreate,
    InventoryPublic,
    InventoryUpdate,
    TimelineCreate,
    TimelinePublic,
)
from app.routing import api_router

router = api_router(prefix="/v1/courses/{course_id}", tags=["formulation"])
CHANGE = errors(*AUTH, 400, 404, 409, 412, 428)


@router.get("/formulation", response_model=FormulationPublic, responses=errors(*AUTH, 404))
async def get_formulation(course_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Read the course's formulation (404 until one is written)."""
    await courses.get(db, principal, course_id)
    formulation = await repository.get_formulation(db, course_id)
    if formulation is None:
        raise NotFound("This course has no formulation yet.")
    return resource(formulation)


@router.put("/formulation", response_model=FormulationPublic, responses=CHANGE, openapi_extra=if_match(required=False))
async def put_formulation(course_id: str, body: FormulationPut, request: Request, db: Db, principal: ClinicalWriter) -> JSON:
    """Write the formulation (201 the first time); replacing it needs If-Match (S6, S10)."""
    formulation, created = await service.put_formulation(db, principal, course_id, body.model_dump(mode="json"), optional_version(request))
    return resource(formulation, status=201 if created else 200)


@router.post("/inventory", status_code=201, response_model=InventoryPublic, responses=errors(*AUTH, 400, 404, 409))
async def create_relationship(course_id: str, body: InventoryCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Add a relationship to the interpersonal inventory."""
    row = await service.add_relationship(db, principal, course_id, body.model_dump())
    return resource(row, status=201, headers={"Location": f"/v1/courses/{course_id}/inventory/{row['id']}"})


@router.get("/inventory", response_model=ListOf[InventoryPublic], responses=errors(*AUTH, 404))
async def list_relationships(
    course_id: str, db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("inventory"))]
) -> JSON:
    """List the interpersonal inventory."""
    await courses.get(db, principal, course_id)
    return JSON(await repository.list_relationships(db, course_id, page))


@router.get("/inventory/{relationship_id}", response_model=InventoryPublic, responses=errors(*AUTH, 404))
async def get_relationship(course_id: str, relationship_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Read one relationship of the inventory."""
    await courses.get(db, principal, course_id)
    return resource(await repository.get_relationship(db, course_id, relationship_id))


@router.patch("/inventory/{relationship_id}", response_model=InventoryPublic, responses=CHANGE, openapi_extra=if_match())
async def update_relationship(
    course_id: str, relationship_id: str, body: InventoryUpdate, request: Request, db: Db, principal: ClinicalWriter
) -> JSON:
    """Change a relationship of the inventory; needs If-Match."""
    version = required_version(request)
    return resource(await service.update_relationship(db, principal, course_id, relationship_id, version, body.changes()))


@router.delete("/inventory/{relationship_id}", status_code=204, responses=CHANGE, openapi_extra=if_match())
async def delete_relationship(course_id: str, relationship_id: str, request: Request, db: Db, principal: ClinicalWriter) -> Response:
    """Remove a relationship from the inventory; needs If-Match."""
    version = required_version(request)
    await service.delete_relationship(db, principal, course_id, relationship_id, version)
    return Response(status_code=204)


@router.post("/timeline", status_code=201, response_model=TimelinePublic, responses=errors(*AUTH, 400, 404, 409))
async def create_timeline_event(course_id: str, body: TimelineCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Add a life event and the change in mood that went with it."""
    return resource(await service.add_event(db, principal, course_id, body.model_dump()), status=201)


@router.get("/timeline", response_model=ListOf[TimelinePublic], responses=errors(*AUTH, 404))
async def list_timeline(
    course_id: str, db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("timeline"))]
) -> JSON:
    """List the timeline in the order events were recorded."""
    await courses.get(db, principal, course_id)
    return JSON(await repository.list_events(db, course_id, page))
