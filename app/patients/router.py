"""Patients: the EHR's people in IPT care."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from app.core.http import JSON, required_version, resource
from app.core.openapi import AUTH, errors, if_match
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.deps import ClinicalReader, ClinicalWriter, Db
from app.patients import repository
from app.patients.schemas import PatientCreate, PatientPublic, PatientUpdate
from app.routing import api_router

router = api_router(prefix="/v1/patients", tags=["patients"])


@router.post("", status_code=201, response_model=PatientPublic, responses=errors(*AUTH, 400, 409))
async def create_patient(body: PatientCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Create a patient; a taken external_id is 409 duplicate_external_id with the existing id."""
    row = await repository.create(db, principal, body.model_dump())
    return resource(row, status=201, headers={"Location": f"/v1/patients/{row['id']}"})


@router.get("", response_model=ListOf[PatientPublic], responses=errors(*AUTH))
async def list_patients(
    db: Db,
    principal: ClinicalReader,
    page: Annotated[Page, Depends(page_params("patients"))],
    external_id: Annotated[str | None, Query(max_length=200, description="Find the patient with this EHR id.")] = None,
) -> JSON:
    """List the patients in the caller's reach, in creation order."""
    return JSON(await repository.list_page(db, principal, page, external_id))


@router.get("/{patient_id}", response_model=PatientPublic, responses=errors(*AUTH, 404))
async def get_patient(patient_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Read one patient."""
    return resource(await repository.get(db, principal, patient_id))


@router.patch("/{patient_id}", response_model=PatientPublic, responses=errors(*AUTH, 400, 404, 409, 412, 428), openapi_extra=if_match())
async def update_patient(patient_id: str, body: PatientUpdate, request: Request, db: Db, principal: ClinicalWriter) -> JSON:
    """Change a patient; needs If-Match with the ETag last read."""
    version = required_version(request)
    return resource(await repository.update(db, principal, patient_id, version, body.changes()))
