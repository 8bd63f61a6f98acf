"""Therapy sessions of a course."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from app.core.http import JSON, required_version, resource
from app.core.openapi import AUTH, errors, if_match
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.courses import repository as courses
from app.deps import ClinicalReader, ClinicalWriter, Db
from app.routing import api_router
from app.sessions import repository, service
from app.sessions.schemas import SessionCreate, SessionPublic, SessionUpdate

router = api_router(prefix="/v1/courses/{course_id}/sessions", tags=["sessions"])


@router.post("", status_code=201, response_model=SessionPublic, responses=errors(*AUTH, 400, 404, 409))
async def create_session(course_id: str, body: SessionCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Record a session; attended sessions are numbered and count against the contract (S3-S7)."""
    session = await service.record(db, principal, course_id, body.model_dump())
    return resource(session, status=201, headers={"Location": f"/v1/courses/{course_id}/sessions/{session['id']}"})


@router.get("", response_model=ListOf[SessionPublic], responses=errors(*AUTH, 404))
async def list_sessions(
    course_id: str, db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("sessions"))]
) -> JSON:
    """List the course's sessions in the order they were held."""
    await courses.get(db, principal, course_id)
    return JSON(await repository.list_page(db, course_id, page))


@router.get("/{session_id}", response_model=SessionPublic, responses=errors(*AUTH, 404))
async def get_session(course_id: str, session_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Read one session."""
    await courses.get(db, principal, course_id)
    return resource(await repository.get(db, course_id, session_id))


@router.patch("/{session_id}", response_model=SessionPublic, responses=errors(*AUTH, 400, 404, 409, 412, 428), openapi_extra=if_match())
async def update_session(
    course_id: str, session_id: str, body: SessionUpdate, request: Request, db: Db, principal: ClinicalWriter
) -> JSON:
    """Edit modality, duration, problem areas or note; needs If-Match."""
    version = required_version(request)
    return resource(await service.update(db, principal, course_id, session_id, version, body.changes()))


@router.delete("/{session_id}", status_code=204, responses=errors(*AUTH, 404, 409, 412, 428), openapi_extra=if_match())
async def delete_session(course_id: str, session_id: str, request: Request, db: Db, principal: ClinicalWriter) -> Response:
    """Delete the most recent session (only that one); needs If-Match."""
    version = required_version(request)
    await service.delete(db, principal, course_id, session_id, version)
    return Response(status_code=204)
