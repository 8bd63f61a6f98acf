"""The request pipeline of every protected route: rate limit, one transaction, idempotency, audit.

A custom route class rather than middleware, so that the idempotency record and the audit event
are written in the same transaction as the effect, and the transaction commits before the
response is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.audit import context as audit_context
from app.audit import writer as audit
from app.core import idempotency
from app.core.db import transaction
from app.core.errors import AppError, RateLimited
from app.core.plan import compiled_handler
from app.core.security import InvalidToken
from app.rules.errors import RuleViolation

Handler = Callable[[Request], Awaitable[Response]]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _status_of(exc: Exception) -> int:
    if isinstance(exc, AppError | RuleViolation):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


def _read_claims(request: Request) -> None:
    """Verify the bearer token once; the principal dependency re-reads the account."""
    request.state.claims = None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    request.state.bearer_given = scheme.lower() == "bearer" and bool(token)  # as HTTPBearer reads the header
    if request.state.bearer_given:
        try:
            request.state.claims = request.app.state.secrets.decode_access_token(token.strip())
        except InvalidToken:
            request.state.claims = None


async def _throttle(request: Request) -> None:
    state = request.app.state
    claims = request.state.claims
    caller = f"{claims.kind}:{claims.sub}" if claims else f"ip:{request.client.host if request.client else '-'}"
    retry = await state.rate_limiter.hit(caller, state.settings.rate_limit_per_minute)
    if retry is not None:
        raise RateLimited(retry)


async def run(request: Request, handler: Handler, template: str) -> Response:
    """Run one request in one transaction and audit it, refusals included."""
    _read_claims(request)
    await _throttle(request)
    note = audit_context.begin()
    claims = request.state.claims
    key = idempotency.valid_key(request) if request.method == "POST" and claims else None
    engine = request.app.state.engine
    try:
        if request.method in _BODY_METHODS:
            await request.body()  # a slow upload arrives before it holds one of the pool's connections
        async with transaction(engine, write=True) as db:
            request.state.db = db
            response = None
            if key is not None:
                caller = f"{claims.kind}:{claims.sub}"
                fingerprint = await idempotency.request_fingerprint(request)
                response = await idempotency.claim(db, caller, key, fingerprint)
            if response is None:
                response = await handler(request)
                if key is not None and 200 <= response.status_code < 300:
                    await idempotency.remember(db, caller, key, fingerprint, response)
            event = audit.event_for(request, note, response.status_code, template, response=response)
            await audit.record(db, event, request.path_params.get("course_id"))
        return response
    except Exception as exc:
        status = _status_of(exc)
        if status in audit.DENIED:
            # The refused attempt is recorded on its own: the request's transaction was rolled back.
            async with transaction(engine, write=True) as db:
                await audit.record(db, audit.event_for(request, note, status, template), request.path_params.get("course_id"))
        raise


class AuditedRoute(APIRoute):
    """An API route run through the pipeline above."""

    compiled = False  # whether the route runs a compiled plan (app.core.plan) rather than FastAPI's handler

    def get_route_handler(self) -> Handler:
        handler = compiled_handler(self.dependant)
        self.compiled = handler is not None
        return self.audited(handler or super().get_route_handler())

    def audited(self, handler: Handler) -> Handler:
        """``handler`` run through the pipeline, audited under this route's path template."""
        template = self.path

        async def route(request: Request) -> Response:
            return await run(request, handler, template)

        return route
