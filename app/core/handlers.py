"""One place that renders every error as an RFC 9457 problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.errors import AppError, Unavailable, problem
from app.core.http import dumps
from app.rules.errors import RuleViolation

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


def _location(loc: tuple) -> list:
    return [part for part in loc if part != "body" or len(loc) == 1]


async def _app_error(_: Request, exc: AppError) -> Response:
    body = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
    return problem_response(exc.status, body, exc.headers)


async def _rule_violation(_: Request, exc: RuleViolation) -> Response:
    title = "Refused by the IPT rules" if exc.status == 409 else "Not allowed"
    body = problem(exc.status, exc.code, title, exc.message, rule=exc.rule, **exc.context)
    return problem_response(exc.status, body)


async def _validation(_: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, problem(400, "bad_request", "Bad request", "The body is not valid JSON."))
    # Only where and what: never the submitted value, which may be clinical text.
    listed = [{"loc": _location(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")} for e in errors]
    body = problem(422, "validation_error", "Validation error", "The request did not validate.", errors=listed)
    return problem_response(422, body)


async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else title
    return problem_response(exc.status_code, problem(exc.status_code, code, title, detail), getattr(exc, "headers", None))


async def _integrity(_: Request, exc: IntegrityError) -> Response:
    log.info("integrity conflict: %s", type(exc.orig).__name__)
    body = problem(409, "conflict", "Conflict", "The change conflicts with data written at the same time; retry.")
    return problem_response(409, body)


async def _database_error(request: Request, exc: DBAPIError) -> Response:
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return await _database_down(request, exc)
    if isinstance(exc, DataError):
        # A value the database cannot take (PostgreSQL refuses NUL in text): the request's fault, not a 500.
        log.warning("database refused a value: %s", type(exc.orig).__name__)
        detail = "The request holds a value the database cannot store, such as a NUL character."
        return problem_response(400, problem(400, "bad_request", "Bad request", detail))
    return await _unexpected(request, exc)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc).__name__)
    return await _app_error(request, Unavailable())


def internal_error_response() -> Response:
    """The 500 problem: says nothing about what failed."""
    body = problem(500, "internal_error", "Internal error", "Something went wrong on our side; it has been logged.")
    return problem_response(500, body)


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return internal_error_response()


def install(app: FastAPI) -> None:
    """Register every handler on the app."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RuleViolation, _rule_violation)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
