"""What the FHIR view's responses look like, for the OpenAPI document (the FHIR R4 specification is the full shape)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.fhir import mapping, questionnaire
from app.fhir.errors import MEDIA_TYPE

_DESCRIPTIONS = {
    401: "No, bad or expired token (issue code login).",
    403: "The token lacks the scope for this (issue code forbidden).",
    400: "The body is not JSON (issue code invalid).",
    404: "No such resource in the caller's reach (issue code not-found).",
    409: "A rule refused it, e.g. the course is closed, or the Idempotency-Key is in use (issue code conflict).",
    415: "The body is not application/fhir+json or application/json (issue code not-supported).",
    422: "The request did not validate (issue code processing).",
    429: "Rate limited; see Retry-After (issue code throttled).",
    500: "The export job failed (issue code exception).",
    503: "The database is unavailable; see Retry-After (issue code transient).",
}


class FhirResource(BaseModel):
    """A FHIR R4 resource; every element the specification defines may appear."""

    model_config = ConfigDict(extra="allow")
    resourceType: str
    id: str | None = None


class FhirEpisodeOfCare(FhirResource):
    """A course of IPT as a FHIR R4 EpisodeOfCare."""

    resourceType: Literal["EpisodeOfCare"]
    status: Literal["active", "finished", "cancelled"]


class FhirBundleEntry(BaseModel):
    """One resource of a Bundle with its fullUrl."""

    model_config = ConfigDict(extra="allow")
    fullUrl: str
    resource: FhirResource


class FhirBundle(FhirResource):
    """A FHIR R4 searchset Bundle."""

    resourceType: Literal["Bundle"]
    type: Literal["searchset"]
    total: int
    entry: list[FhirBundleEntry]


class FhirCollection(FhirResource):
    """A FHIR R4 collection Bundle: the resources one request created."""

    resourceType: Literal["Bundle"]
    type: Literal["collection"]
    entry: list[FhirBundleEntry]


class FhirQuestionnaireItem(BaseModel):
    """One question: its linkId (the item number, or "total") and the whole numbers it accepts."""

    model_config = ConfigDict(extra="allow")
    linkId: str
    type: Literal["integer"]
    required: bool


class FhirQuestionnaire(FhirResource):
    """An instrument of the catalogue as a FHIR R4 Questionnaire."""

    resourceType: Literal["Questionnaire"]
    url: str
    status: Literal["active"]
    item: list[FhirQuestionnaireItem]


class FhirConcept(BaseModel):
    """One code of a CodeSystem."""

    code: str
    display: str
    definition: str


class FhirCodeSystem(FhirResource):
    """A FHIR R4 CodeSystem with complete content."""

    resourceType: Literal["CodeSystem"]
    url: str
    status: Literal["active"]
    content: Literal["complete"]
    concept: list[FhirConcept]


class FhirCapabilityStatement(FhirResource):
    """What the FHIR view can do (R4 CapabilityStatement): its resources, interactions and security."""

    resourceType: Literal["CapabilityStatement"]
    status: Literal["active"]
    kind: Literal["instance"]
    fhirVersion: str
    format: list[str]
    rest: list[dict[str, Any]]


class FhirBulkOutput(BaseModel):
    """One NDJSON file of a Bulk Data export."""

    type: str
    url: str
    count: int


class FhirBulkLink(BaseModel):
    """A partial manifest's link to the next one (Bulk Data 3.0, allowPartialManifests)."""

    relation: Literal["next"]
    url: str


class FhirBulkManifest(BaseModel):
    """The Bulk Data Access 2.0 completion manifest (and, with allowPartialManifests, a partial one with a link)."""

    transactionTime: str
    request: str
    requiresAccessToken: bool
    output: list[FhirBulkOutput]
    error: list[FhirBulkOutput]
    link: list[FhirBulkLink] | None = None


class FhirIssue(BaseModel):
    """One issue: its severity (error, or information for an accepted Bulk Data job), a FHIR issue type, and
    the API's stable code in details."""

    severity: Literal["fatal", "error", "warning", "information"]
    code: str
    details: dict[str, Any]


class FhirOperationOutcome(BaseModel):
    """An error of the FHIR view."""

    resourceType: Literal["OperationOutcome"]
    issue: list[FhirIssue]


def outcomes(*statuses: int, by_reference: bool = False) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry for the errors an operation can answer, as OperationOutcome.

    ``by_reference`` names the schema itself, for routes whose own media type is not FHIR JSON (an
    NDJSON file): FastAPI would file a response model under that media type instead.
    """
    if by_reference:
        content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/FhirOperationOutcome"}}}
        return {status: {"description": _DESCRIPTIONS[status], "content": content} for status in sorted(set(statuses))}
    return {
        status: {"model": FhirOperationOutcome, "description": _DESCRIPTIONS[status], "content": {MEDIA_TYPE: {}}}
        for status in sorted(set(statuses))
    }


def _reference(kind: str) -> dict[str, Any]:
    return {"type": "object", "required": ["reference"],
            "properties": {"reference": {"type": "string", "pattern": f"^{kind}/[A-Za-z0-9.-]{{1,64}}$"}}}


def _questionnaire_response_schema() -> dict[str, Any]:
    """The shape a posted QuestionnaireResponse must have (app.fhir.intake checks it, and its answers, in full)."""
    answer = {"type": "object", "required": ["valueInteger"], "properties": {"valueInteger": {"type": "integer"}}}
    return {
        "type": "object",
        "description": "A FHIR R4 QuestionnaireResponse naming its course by the workflow-episodeOfCare extension.",
        "required": ["resourceType", "extension", "questionnaire", "status", "subject", "authored", "item"],
        "properties": {
            "resourceType": {"const": "QuestionnaireResponse"},
            "extension": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                "type": "object", "required": ["url", "valueReference"],
                "properties": {"url": {"const": mapping.EPISODE_OF_CARE}, "valueReference": _reference("EpisodeOfCare")}}},
            "questionnaire": {"enum": sorted(questionnaire.BY_URL)},
            "status": {"const": "completed"},
            "subject": _reference("Patient"),
            "encounter": _reference("Encounter"),
            "authored": {"type": "string", "format": "date"},
            "item": {"type": "array", "items": {
                "type": "object", "required": ["linkId", "answer"],
                "properties": {"linkId": {"type": "string"},
                               "answer": {"type": "array", "minItems": 1, "maxItems": 1, "items": answer}}}},
        },
    }


def fhir_body() -> dict[str, Any]:
    """The ``openapi_extra`` documenting the QuestionnaireResponse body, read by the route itself (not by FastAPI)."""
    schema = _questionnaire_response_schema()
    # One media type in the document (application/json is read too): generated clients would build every nested
    # model of the body once per media type, under the same names.
    return {"requestBody": {"required": True, "description": "application/fhir+json (or application/json).",
                            "content": {MEDIA_TYPE: {"schema": schema}}}}
