"""One place that renders every error as an RFC 9457 problem, or in the format a path prefix registered (FHIR's)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from app.core.errors import AppError, Unavailable, problem
from app.core.http import dumps
from app.rules.errors import RuleViolation

# Renders a problem (status, body, headers) as the response of another format, such as FHIR's OperationOutcome.
Renderer = Callable[[int, dict, "dict[str, str] | None"], Response]
log = logging.getLogger("ipt.errors")
_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
}


def problem_response(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    """A problem+json response."""
    return Response(dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


def _render(scope: Scope, status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    """The problem, or the same error in the format registered for the path's prefix (see ``install``)."""
    path = scope.get("path", "")
    for prefix, render in scope["app"].state.error_renderers:
        if path.startswith(prefix):
            return render(status, body, headers)
    return problem_response(status, body, headers)


def _respond(request: Request, status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    return _render(request.scope, status, body, headers)


def _location(loc: tuple) -> list:
    return [part for part in loc if part != "body" or len(loc) == 1]


async def _app_error(request: Request, exc: AppError) -> Response:
    body = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
    return _respond(request, exc.status, body, exc.headers)


async def _rule_violation(request: Request, exc: RuleViolation) -> Response:
    title = "Refused by the IPT rules" if exc.status == 409 else "Not allowed"
    body = problem(exc.status, exc.code, title, exc.message, rule=exc.rule, **exc.context)
    return _respond(request, exc.status, body)


async def _validation(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _respond(request, 400, problem(400, "bad_request", "Bad request", "The body is not valid JSON."))
    # Only where and what: never the submitted value, which may be clinical text.
    listed = [{"loc": _location(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")} for e in errors]
    body = problem(422, "validation_error", "Validation error", "The request did not validate.", errors=listed)
    return _respond(request, 422, body)


_METHODS = {"get", "put", "post", "patch", "delete"}


def _allowed_methods(request: Request) -> str | None:
    """The documented methods of the path: Starlette names only the first route's (GET and POST are two routes)."""
    for template, item in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            return ", ".join(sorted(method.upper() for method in item if method in _METHODS))
    return None


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else title
    body = problem(exc.status_code, code, title, detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers = {**(headers or {}), "Allow": allowed}
    return _respond(request, exc.status_code, body, headers)


async def _integrity(request: Request, exc: IntegrityError) -> Response:
    log.info("integrity conflict: %s", type(exc.orig).__name__)
    body = problem(409, "conflict", "Conflict", "The change conflicts with data written at the same time; retry.")
    return _respond(request, 409, body)


def _sqlstate(exc: DBAPIError) -> str:
    """The PostgreSQL error code, whichever driver raised it ("" when there is none)."""
    return str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")


async def _database_error(request: Request, exc: DBAPIError) -> Response:
    state = _sqlstate(exc)
    # 08: connection failures; 57P01-57P03: the server is shutting down or not yet accepting connections.
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated or state.startswith(("08", "57P")):
        return await _database_down(request, exc)
    if isinstance(exc, DataError) or state.startswith("22"):  # 22: data exceptions (asyncpg's are not DataError)
        # A value the database cannot take (PostgreSQL refuses NUL in text): the request's fault, not a 500.
        log.warning("database refused a value: %s", type(exc.orig).__name__)
        detail = "The request holds a value the database cannot store, such as a NUL character."
        return _respond(request, 400, problem(400, "bad_request", "Bad request", detail))
    return await _unexpected(request, exc)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc).__name__)
    return await _app_error(request, Unavailable())


def internal_error_response(scope: Scope) -> Response:
    """The 500 problem (in the path's registered format): says nothing about what failed."""
    body = problem(500, "internal_error", "Internal error", "Something went wrong on our side; it has been logged.")
    return _render(scope, 500, body)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return internal_error_response(request.scope)


def install(app: FastAPI, renderers: Mapping[str, Renderer] | None = None) -> None:
    """Register every handler on the app; an error under a prefix of ``renderers`` is answered by its renderer."""
    app.state.error_renderers = tuple((renderers or {}).items())
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RuleViolation, _rule_violation)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
