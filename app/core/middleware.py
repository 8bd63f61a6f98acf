"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request)."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.handlers import internal_error_response

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Give every request an id (the caller's if sane) and echo it as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if _SANE_ID.match(candidate) else None
                break
        request_id = request_id or os.urandom(16).hex()  # as random as uuid4().hex, without the UUID object
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette renders an unhandled error outside every user middleware, so the 500 would
            # lose its X-Request-ID: answer here, then re-raise so the error is still logged.
            if not started:
                await internal_error_response(scope)(scope, receive, send_with_id)
            raise
