"""Cursor pagination: opaque, signed cursors over a stable (id) order."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Query, Request

from app.core.errors import Unprocessable

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Page:
    """The requested page: how many rows, and the last id already seen (None: first page)."""

    limit: int
    after: str | None
    list_name: str
    sign: Any

    def response(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The list body; ``rows`` holds up to limit + 1 items, the extra one proving a next page."""
        more = len(rows) > self.limit
        data = rows[: self.limit]
        cursor = encode_cursor(self.sign, self.list_name, data[-1]["id"]) if more and data else None
        return {"data": data, "next_cursor": cursor}


def encode_cursor(sign: Any, list_name: str, last_id: str) -> str:
    """A cursor bound to one list and signed, so a forged or foreign cursor is refused."""
    payload = orjson.dumps([list_name, last_id])
    tag = sign(payload)
    return base64.urlsafe_b64encode(payload + b"." + tag.encode()).decode().rstrip("=")


def decode_cursor(sign: Any, list_name: str, cursor: str) -> str:
    """The last id a cursor points after; 422 invalid_cursor when it is not ours or not this list's."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload, _, tag = raw.rpartition(b".")
        name, last_id = orjson.loads(payload)
        valid = tag.decode() == sign(payload) and name == list_name and isinstance(last_id, str)
    except (ValueError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError):
        valid = False
    if not valid:
        raise Unprocessable("The cursor is not valid for this list.", code="invalid_cursor")
    return last_id


def page_params(list_name: str):
    """A dependency reading ``limit`` and ``cursor`` for the named list."""

    # async: FastAPI runs a plain def dependency in a worker thread, a thread hop per request.
    async def dependency(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1-200).")] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, Query(max_length=512, description="The next_cursor of the previous page.")] = None,
    ) -> Page:
        sign = request.app.state.secrets.sign
        after = decode_cursor(sign, list_name, cursor) if cursor else None
        return Page(limit=limit, after=after, list_name=list_name, sign=sign)

    return dependency
