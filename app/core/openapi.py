"""OpenAPI helpers: documented error responses and stable operation ids."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from app.core.schemas import Problem

_DESCRIPTIONS = {
    400: "Malformed request (bad JSON or header).",
    401: "No, bad or expired token.",
    403: "The token lacks the scope or role for this.",
    404: "No such resource in the caller's reach.",
    409: "Conflict: a rule, a duplicate, or a key in use.",
    412: "If-Match does not match the current version.",
    413: "Body over the size limit.",
    422: "Validation failed.",
    428: "If-Match is required.",
    429: "Rate limited; see Retry-After.",
    503: "The database is unavailable; see Retry-After.",
}
AUTH = (401, 403, 422, 429, 503)
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry for the problem statuses an operation can answer."""
    codes = sorted(set(statuses))
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {}},
        }
        for status in codes
    }


def if_match(required: bool = True) -> dict[str, Any]:
    """The ``openapi_extra`` that documents If-Match: 428 without it where required, 412 when stale."""
    description = "The ETag last read" + ("." if required else "; when sent, 412 unless it is still current.")
    header = {"name": "If-Match", "in": "header", "required": required, "description": description,
              "schema": {"type": "string", "minLength": 1, "examples": ['"1"']}}
    return {"parameters": [header]}


def operation_id(route: APIRoute) -> str:
    """``tag-route_name``: stable ids for generated clients."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


_ID = "$response.body#/id"
_ETAG = "$response.header.ETag"
_COURSE = {"course_id": _ID}
_IN_COURSE = {"course_id": "$request.path.course_id"}
_COURSE_CHILDREN = (
    "courses-get_course", "courses-list_extensions", "courses-create_extension", "courses-list_transitions",
    "courses-create_transition", "formulation-get_formulation", "formulation-put_formulation",
    "formulation-list_relationships", "formulation-create_relationship", "formulation-list_timeline",
    "formulation-create_timeline_event", "measures-list_measures", "measures-create_measure", "measures-get_outcomes",
    "measures-get_outcome_chart", "measures-list_risk_acknowledgements", "measures-create_risk_acknowledgement",
    "sessions-list_sessions", "sessions-create_session", "fhir-read_episode_of_care", "fhir-episode_of_care_everything",
)
# OpenAPI links: (operation, status) -> [(target operation, parameters, request body)]. A resource's id and
# ETag flow from the response that created or read it to the operations on it (and course ids to the
# course's sub-resources), so stateful testing can walk the API the way a client does.
LINKS: dict[tuple[str, str], list[tuple[str, dict[str, str], dict[str, str] | None]]] = {
    ("patients-create_patient", "201"): [
        ("patients-get_patient", {"patient_id": _ID}, None),
        ("patients-update_patient", {"patient_id": _ID, "header.If-Match": _ETAG}, None),
        ("courses-create_course", {}, {"patient_id": _ID}),
    ],
    ("patients-get_patient", "200"): [("patients-update_patient", {"patient_id": _ID, "header.If-Match": _ETAG}, None)],
    ("courses-create_course", "201"): [
        *((target, _COURSE, None) for target in _COURSE_CHILDREN),
        ("courses-update_course", {**_COURSE, "header.If-Match": _ETAG}, None),
    ],
    ("courses-get_course", "200"): [("courses-update_course", {**_COURSE, "header.If-Match": _ETAG}, None)],
    ("formulation-create_relationship", "201"): [
        ("formulation-get_relationship", {**_IN_COURSE, "relationship_id": _ID}, None),
        ("formulation-update_relationship", {**_IN_COURSE, "relationship_id": _ID, "header.If-Match": _ETAG}, None),
        ("formulation-delete_relationship", {**_IN_COURSE, "relationship_id": _ID, "header.If-Match": _ETAG}, None),
    ],
    ("sessions-create_session", "201"): [
        ("sessions-get_session", {**_IN_COURSE, "session_id": _ID}, None),
        ("sessions-update_session", {**_IN_COURSE, "session_id": _ID, "header.If-Match": _ETAG}, None),
        ("sessions-delete_session", {**_IN_COURSE, "session_id": _ID, "header.If-Match": _ETAG}, None),
    ],
    ("measures-create_measure", "201"): [("measures-get_measure", {**_IN_COURSE, "measure_id": _ID}, None)],
    ("admin-create_user", "201"): [
        ("admin-get_user", {"user_id": _ID}, None),
        ("admin-update_user", {"user_id": _ID, "header.If-Match": _ETAG}, None),
        ("admin-set_user_password", {"user_id": _ID, "header.If-Match": _ETAG}, None),
    ],
    ("admin-create_integration", "201"): [
        ("admin-get_integration", {"integration_id": _ID}, None),
        ("admin-delete_integration", {"integration_id": _ID, "header.If-Match": _ETAG}, None),
    ],
    ("webhooks-create_webhook", "201"): [
        ("webhooks-get_webhook", {"webhook_id": _ID}, None),
        ("webhooks-update_webhook", {"webhook_id": _ID, "header.If-Match": _ETAG}, None),
        ("webhooks-delete_webhook", {"webhook_id": _ID, "header.If-Match": _ETAG}, None),
        ("webhooks-list_deliveries", {"webhook_id": _ID}, None),
    ],
}


BEARER = HTTPBearer(auto_error=False, description="An access token from POST /v1/auth/token.")


def requires_bearer(dependency: Any) -> Any:
    """Mark a dependency that reads the bearer token itself, so its routes are documented as needing it.

    FastAPI documents a route's security from an HTTPBearer sub-dependency, which it would also run
    on every request: one more level of dependency solving, for a header the pipeline already read.
    """
    dependency.requires_bearer = True
    return dependency


def install(app: FastAPI) -> None:
    """Serve an OpenAPI document whose problem responses are typed ``application/problem+json``, with links."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return _links(_problem_content(_bearer_security(app, build())))

    app.openapi = openapi  # type: ignore[method-assign]


def _bearer_security(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Document the bearer token on the operations whose dependencies are marked ``requires_bearer``."""
    name = BEARER.scheme_name
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema and _needs_bearer(route.dependant):
            for method in route.methods:
                operation = schema["paths"][route.path_format][method.lower()]
                operation["security"] = [{name: []}]
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[name] = BEARER.model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return schema


def _needs_bearer(dependant: Dependant) -> bool:
    return any(getattr(d.call, "requires_bearer", False) or _needs_bearer(d) for d in dependant.dependencies)


def _problem_content(schema: dict[str, Any]) -> dict[str, Any]:
    # FastAPI files a response model under the route's media type (application/json); problems are
    # sent as application/problem+json, so move the schema there. Every authenticated operation can
    # answer 401 and 422, so those are listed even where a route did not name them; FastAPI's own
    # 422 (HTTPValidationError as application/json) is not what the handlers send, so it is replaced.
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.get("responses", {})
            if "422" in responses and _FASTAPI_422 in str(responses["422"]):
                responses["422"] = _problem_response(422)
            if operation.get("security") and path.startswith("/v1/"):
                for status in (401, 422):
                    responses.setdefault(str(status), _problem_response(status))
            for response in responses.values():
                content = response.get("content", {})
                if "application/problem+json" in content and "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
                elif content.get("application/json") == {} and len(content) == 2:
                    # A plain JSON answer declared on a route of another media type (a Bulk Data manifest
                    # under /fhir): FastAPI filed the model under the route's type; it belongs here.
                    other = next(t for t in content if t != "application/json")
                    content["application/json"] = content.pop(other)
    schemas = schema.get("components", {}).get("schemas", {})
    if _FASTAPI_422 not in str(schema.get("paths")):
        schemas.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in str(schema):
            schemas.pop("ValidationError", None)
    return schema


def _problem_response(status: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {"description": _DESCRIPTIONS[status], "content": {"application/problem+json": {"schema": ref}}}


def _links(schema: dict[str, Any]) -> dict[str, Any]:
    operations = {op["operationId"]: op for item in schema.get("paths", {}).values() for op in item.values() if "operationId" in op}
    for (source, status), targets in LINKS.items():
        links = operations[source]["responses"][status].setdefault("links", {})
        for target, parameters, body in targets:
            if target not in operations:
                raise KeyError(f"link from {source} to unknown operation {target}")
            link: dict[str, Any] = {"operationId": target}
            if parameters:
                link["parameters"] = dict(parameters)
            if body:
                link["requestBody"] = dict(body)
            links[target.split("-", 1)[1]] = link
    return schema
