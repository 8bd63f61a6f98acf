"""Typed errors raised below the routers, rendered by one handler as RFC 9457 problems."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://ipt.example/problems/"


class AppError(Exception):
    """An error a client can act on: an HTTP status, a stable code and a plain message."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The RFC 9457 body every error shares."""
    body = {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail, "code": code}
    body.update(extra)
    return body


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthenticated(AppError):
    status, code, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str = "A valid bearer token is required.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class PreconditionFailed(AppError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class Unprocessable(AppError):
    status, code, title = 422, "validation_error", "Validation error"

    def __init__(self, detail: str, *, code: str = "validation_error", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class PreconditionRequired(AppError):
    status, code, title = 428, "precondition_required", "Precondition required"


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many requests; retry later.", headers={"Retry-After": str(retry_after)})


class Unavailable(AppError):
    status, code, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str = "The database is not answering; retry shortly.") -> None:
        super().__init__(detail, headers={"Retry-After": "2"})
