"""The instrument catalogue, outcome measures of a course, outcomes, the trajectory chart, risk acknowledgements."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response

from app import instruments
from app.core.errors import NotFound
from app.core.http import JSON, resource
from app.core.negotiation import negotiate
from app.core.openapi import AUTH, errors
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.deps import ClinicalReader, ClinicalWriter, CurrentPrincipal, Db
from app.measures import service
from app.measures.schemas import (
    InstrumentId,
    InstrumentPublic,
    MeasureCreate,
    MeasurePublic,
    OutcomesPublic,
    RiskAcknowledgementCreate,
    RiskAcknowledgementPublic,
)
from app.routing import api_router

catalogue = api_router(prefix="/v1/instruments", tags=["instruments"])
measures = api_router(prefix="/v1/courses/{course_id}", tags=["measures"])
# The chart is image/svg+xml; Accept: application/octet-stream gets the same bytes as a download. Declaring
# both is what lets generators that know only JSON, text/* and octet-stream (openapi-python-client) keep it.
CHART_TYPES = ("image/svg+xml", "application/octet-stream")
SVG = {200: {"description": "The chart as SVG (image/svg+xml unless Accept prefers application/octet-stream).",
             "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in CHART_TYPES}}}


@catalogue.get("", response_model=list[InstrumentPublic], responses=errors(401, 503))
async def list_instruments(_: CurrentPrincipal) -> JSON:
    """The instrument catalogue: items, scoring, bands, risk items, thresholds, LOINC codes, licence."""
    return JSON([i.as_dict() for i in instruments.INSTRUMENTS.values()])


@catalogue.get("/{instrument_id}", response_model=InstrumentPublic, responses=errors(401, 404, 503))
async def get_instrument(instrument_id: str, _: CurrentPrincipal) -> JSON:
    """One instrument of the catalogue."""
    try:
        return JSON(instruments.get_instrument(instrument_id).as_dict())
    except instruments.UnknownInstrument:
        raise NotFound("No such instrument.") from None


@measures.post("/measures", status_code=201, response_model=MeasurePublic, responses=errors(*AUTH, 400, 404, 409))
async def create_measure(course_id: str, body: MeasureCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Record an administration; the service scores it, and a positive risk item flags the course (S6)."""
    measure = await service.record(db, principal, course_id, body.model_dump(exclude_unset=True))
    return resource(measure, status=201, headers={"Location": f"/v1/courses/{course_id}/measures/{measure['id']}"})


@measures.get("/measures", response_model=ListOf[MeasurePublic], responses=errors(*AUTH, 404))
async def list_measures(
    course_id: str,
    db: Db,
    principal: ClinicalReader,
    page: Annotated[Page, Depends(page_params("measures"))],
    instrument: InstrumentId | None = None,
) -> JSON:
    """List the course's measures in the order they were recorded, optionally of one instrument."""
    return JSON(await service.list_page(db, principal, course_id, page, instrument))


@measures.get("/measures/{measure_id}", response_model=MeasurePublic, responses=errors(*AUTH, 404))
async def get_measure(course_id: str, measure_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Read one measure with its change from the baseline."""
    return resource(await service.get(db, principal, course_id, measure_id))


@measures.get("/outcomes", response_model=OutcomesPublic, responses=errors(*AUTH, 404))
async def get_outcomes(course_id: str, db: Db, principal: ClinicalReader) -> JSON:
    """Baseline, latest, change, response, remission, reliable change and recovery per instrument."""
    return JSON(await service.outcomes(db, principal, course_id))


@measures.get("/outcomes/chart.svg", response_class=Response, responses={**SVG, **errors(*AUTH, 404)})
async def get_outcome_chart(
    course_id: str, instrument: InstrumentId, db: Db, principal: ClinicalReader, request: Request
) -> Response:
    """The instrument's trajectory over session numbers as SVG, severity bands shaded, risk flags circled."""
    svg = await service.chart_svg(db, principal, course_id, instrument)
    media_type = negotiate(request.headers.get("accept"), CHART_TYPES)
    headers = {"Vary": "Accept"}
    if media_type != CHART_TYPES[0]:
        headers["Content-Disposition"] = f'attachment; filename="{instrument}-chart.svg"'
    return Response(svg, media_type=media_type, headers=headers)


@measures.post("/risk-acknowledgements", status_code=201, response_model=RiskAcknowledgementPublic,
             responses=errors(*AUTH, 400, 404, 409))
async def create_risk_acknowledgement(course_id: str, body: RiskAcknowledgementCreate, db: Db, principal: ClinicalWriter) -> JSON:
    """Close a measure's open risk flag (the course's therapist or a supervisor); 409 when none is open."""
    return resource(await service.acknowledge(db, principal, course_id, body.model_dump()), status=201)


@measures.get("/risk-acknowledgements", response_model=ListOf[RiskAcknowledgementPublic], responses=errors(*AUTH, 404))
async def list_risk_acknowledgements(
    course_id: str, db: Db, principal: ClinicalReader, page: Annotated[Page, Depends(page_params("risk_acks"))]
) -> JSON:
    """The course's risk acknowledgements: which measure, who, when, and their note."""
    return JSON(await service.list_acknowledgements(db, principal, course_id, page))


routers = (measures, catalogue)
