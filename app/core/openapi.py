"""OpenAPI helpers: documented error responses and stable operation ids."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

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


def operation_id(route: APIRoute) -> str:
    """``tag-route_name``: stable ids for generated clients."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def install(app: FastAPI) -> None:
    """Serve an OpenAPI document whose problem responses are typed ``application/problem+json``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return _problem_content(build())

    app.openapi = openapi  # type: ignore[method-assign]


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
    schemas = schema.get("components", {}).get("schemas", {})
    if _FASTAPI_422 not in str(schema.get("paths")):
        schemas.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in str(schema):
            schemas.pop("ValidationError", None)
    return schema


def _problem_response(status: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {"description": _DESCRIPTIONS[status], "content": {"application/problem+json": {"schema": ref}}}
