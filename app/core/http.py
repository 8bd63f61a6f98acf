"""Fast JSON responses, ETags and If-Match handling."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.core.errors import PreconditionFailed, PreconditionRequired

_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def dumps(data: Any) -> bytes:
    """JSON bytes with dates as ISO strings and naive timestamps read as UTC (RFC 3339, Z)."""
    return orjson.dumps(data, option=_JSON_OPTIONS)


class JSON(JSONResponse):
    """A JSON response serialized with orjson (skips FastAPI's response-model pass)."""

    # Subclassing JSONResponse (not Response) makes OpenAPI document each route's response_model
    # instead of {"type": "string"}.

    def render(self, content: Any) -> bytes:
        return dumps(content)


def etag_for(version: int) -> str:
    """A strong ETag from a row's version counter."""
    return f'"{version}"'


def resource(data: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> JSON:
    """A single resource with its strong ETag."""
    response = JSON(data, status_code=status, headers=headers)
    response.headers["ETag"] = etag_for(data["version"])
    return response


def required_version(request: Request) -> int:
    """The version named by If-Match: 428 when missing, 412 when it cannot match any version."""
    header = request.headers.get("if-match")
    if not header:
        raise PreconditionRequired("Send If-Match with the ETag you last read.")
    tags = [t.strip() for t in header.split(",")]
    for tag in tags:
        if tag.startswith("W/"):
            continue  # weak tags never match for If-Match (RFC 9110, strong comparison)
        value = tag.strip('"')
        if tag.startswith('"') and tag.endswith('"') and value.isdigit():
            return int(value)
    raise PreconditionFailed("If-Match does not match the current version of the resource.")


def optional_version(request: Request) -> int | None:
    """If-Match on a POST that changes a parent resource: checked when sent, not required."""
    return required_version(request) if request.headers.get("if-match") else None
