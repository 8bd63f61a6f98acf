"""FHIR in: the instruments as Questionnaires (read, search by url) and QuestionnaireResponses posted as measures."""

from __future__ import annotations

import orjson
from fastapi import Request

from app.core.errors import BadRequest, NotFound, UnsupportedMediaType
from app.core.ids import utcnow
from app.deps import ClinicalWriter, CurrentPrincipal, Db
from app.fhir import mapping, questionnaire, writes
from app.fhir.errors import MEDIA_TYPE, FhirJSON
from app.fhir.router import PREFIX, base_url
from app.fhir.schemas import FhirBundle, FhirCollection, FhirQuestionnaire, fhir_body, outcomes
from app.routing import api_router

router = api_router(prefix=PREFIX, tags=["fhir"], default_response_class=FhirJSON)
JSON_TYPES = (MEDIA_TYPE, "application/json")


@router.get("/Questionnaire", response_model=FhirBundle, responses=outcomes(401, 422, 429, 503))
async def search_questionnaires(request: Request, _: CurrentPrincipal, url: str | None = None) -> FhirJSON:
    """Search the instruments' Questionnaires by canonical url (none: all of them) as a searchset Bundle."""
    if url is None:
        found = list(questionnaire.QUESTIONNAIRES.values())
    else:
        instrument_id = questionnaire.instrument_of(url)
        found = [] if instrument_id is None else [questionnaire.QUESTIONNAIRES[instrument_id]]
    return FhirJSON(mapping.bundle(found, base_url(request), str(request.url), utcnow()))


@router.get("/Questionnaire/{questionnaire_id}", response_model=FhirQuestionnaire, responses=outcomes(401, 404, 422, 429, 503))
async def read_questionnaire(questionnaire_id: str, _: CurrentPrincipal) -> FhirJSON:
    """Read an instrument of the catalogue as a Questionnaire (no patient data: any token will do)."""
    found = questionnaire.QUESTIONNAIRES.get(questionnaire_id)
    if found is None:
        raise NotFound("No such Questionnaire.")
    return FhirJSON(found)


@router.post("/QuestionnaireResponse", status_code=201, response_model=FhirCollection, openapi_extra=fhir_body(),
             responses=outcomes(400, 401, 403, 404, 409, 415, 422, 429, 503))
async def create_questionnaire_response(request: Request, db: Db, principal: ClinicalWriter) -> FhirJSON:
    """Record a measure from a completed QuestionnaireResponse of a course (its workflow-episodeOfCare extension),
    scored as POST /v1/courses/{id}/measures is; 201 with a collection Bundle of the stored response and its score."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaType("Send the QuestionnaireResponse as application/fhir+json or application/json.")
    try:
        resource = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON.") from None
    base = base_url(request)
    bundle = await writes.record_response(db, principal, resource, base)
    stored = bundle["entry"][0]["resource"]
    headers = {"Location": f"{base}/QuestionnaireResponse/{stored['id']}", "ETag": f'W/"{stored["meta"]["versionId"]}"'}
    return FhirJSON(bundle, status_code=201, headers=headers)
