"""Idempotency-Key on POST: replay the first response, refuse reuse with another body or while in flight."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import BadRequest, Conflict, Unprocessable
from app.core.ids import as_utc, new_id, utcnow
from app.core.models import created_at_field, id_field, json_field

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
KEEP_FOR = timedelta(hours=24)
REPLAYED_HEADERS = ("location", "etag", "content-type")


class IdempotencyRecord(SQLModel, table=True):
    """A completed POST and its response, replayed for the same caller, key and body for 24 hours."""

    __tablename__ = "idempotency_record"
    __table_args__ = (sa.UniqueConstraint("principal", "key"),)
    id: str = id_field()
    principal: str = Field(max_length=64)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    headers: dict = json_field(dict)
    body: str = Field(sa_type=sa.Text)
    created_at: datetime = created_at_field()
    expires_at: datetime = created_at_field()


def valid_key(request: Request) -> str | None:
    """The request's Idempotency-Key, None when absent; 400 when malformed."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not KEY_PATTERN.match(key):
        raise BadRequest("Idempotency-Key must be 1-255 printable ASCII characters without spaces.")
    return key


async def request_fingerprint(request: Request) -> str:
    """A hash of what makes two requests 'the same': method, path, query and body."""
    body = await request.body()
    digest = hashlib.sha256(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _lock_id(caller: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{caller}\0{key}".encode()).digest()[:8], "big", signed=True)


async def claim(db: AsyncConnection, caller: str, key: str, fingerprint: str) -> Response | None:
    """Take the key for this transaction: a stored response to replay, or None to go ahead.

    On PostgreSQL a transaction-scoped advisory lock marks the key in flight: a second request
    with the key gets 409 at once instead of waiting, and a crash releases it with the rollback.
    SQLite runs one writer at a time, so there the second request waits and then replays.
    """
    if db.dialect.name == "postgresql":
        locked = await db.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(_lock_id(caller, key))))
        if not locked:
            raise Conflict("idempotency_key_in_use", "A request with this Idempotency-Key is still being processed.")
    record = (
        await db.execute(
            sa.select(IdempotencyRecord).where(IdempotencyRecord.principal == caller, IdempotencyRecord.key == key)
        )
    ).first()
    if record is None:
        return None
    if as_utc(record.expires_at) <= utcnow():
        await db.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        return None
    if record.request_hash != fingerprint:
        raise Unprocessable("This Idempotency-Key was used with a different request.", code="idempotency_key_reused")
    headers = dict(record.headers) | {"Idempotent-Replayed": "true"}
    return Response(record.body.encode(), status_code=record.status_code, headers=headers)


async def remember(db: AsyncConnection, caller: str, key: str, fingerprint: str, response: Response) -> None:
    """Store the response in the transaction that made the effect, so both exist or neither does."""
    headers: dict[str, Any] = {k: v for k, v in response.headers.items() if k in REPLAYED_HEADERS}
    now = utcnow()
    await db.execute(
        sa.insert(IdempotencyRecord).values(
            id=new_id(), principal=caller, key=key, request_hash=fingerprint, status_code=response.status_code,
            headers=headers, body=response.body.decode(), created_at=now, expires_at=now + KEEP_FOR,
        )
    )


async def purge_expired(db: AsyncConnection) -> int:
    """Forget records older than 24 hours."""
    result = await db.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < utcnow()))
    return result.rowcount or 0


