"""What the FHIR view's responses look like, for the OpenAPI document (the FHIR R4 specification is the full shape)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.fhir.errors import MEDIA_TYPE

_DESCRIPTIONS = {
    401: "No, bad or expired token (issue code login).",
    403: "The token lacks the scope for this (issue code forbidden).",
    404: "No such resource in the caller's reach (issue code not-found).",
    422: "The request did not validate (issue code processing).",
    429: "Rate limited; see Retry-After (issue code throttled).",
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


class FhirIssue(BaseModel):
    """One issue: severity error, a FHIR issue type, and the API's stable code in details."""

    severity: Literal["error"]
    code: str
    details: dict[str, Any]


class FhirOperationOutcome(BaseModel):
    """An error of the FHIR view."""

    resourceType: Literal["OperationOutcome"]
    issue: list[FhirIssue]


def outcomes(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry for the errors an operation can answer, as OperationOutcome."""
    return {
        status: {"model": FhirOperationOutcome, "description": _DESCRIPTIONS[status], "content": {MEDIA_TYPE: {}}}
        for status in sorted(set(statuses))
    }
