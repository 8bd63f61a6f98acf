"""The floor: the least a Python server can do to answer GET /v1/patients/{id} from PostgreSQL.

A raw ASGI app (no framework, no auth, no ORM) on the same uvicorn, running the API's SELECT of
the same patient columns by id through a psycopg 3 pool, in a transaction like the API's, and
returning the row as JSON with orjson. The API's rate divided by this one is what the framework,
auth, and ORM cost. Serve it with:

    FLOOR_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> \\
    uvicorn floor_app:app --app-dir bench --workers 1 --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

PREFIX = "/v1/patients/"
SQL = (
    "SELECT id, organization_id, external_id, display_name, birth_date, sex, version, created_at, updated_at "
    "FROM patient WHERE id = %s"
)
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z  # as app.core.http.dumps
_NOT_FOUND = b'{"status":404}'

pool = AsyncConnectionPool(
    os.environ["FLOOR_DATABASE_URL"],
    min_size=int(os.environ.get("FLOOR_POOL_SIZE", "10")),  # the API's IPT_DB_POOL_SIZE default
    max_size=int(os.environ.get("FLOOR_POOL_SIZE", "10")),
    kwargs={"row_factory": dict_row},
    open=False,
)


async def _respond(send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await pool.open(wait=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    """GET /healthz and GET /v1/patients/{id}; anything else is 404."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if scope["method"] == "GET" and path.startswith(PREFIX):
        # The pool's context commits on the way out: BEGIN, SELECT, COMMIT, as the API's request transaction.
        async with pool.connection() as conn:
            cur = await conn.execute(SQL, (path[len(PREFIX) :],))
            row = await cur.fetchone()
        if row is None:
            await _respond(send, 404, _NOT_FOUND)
        else:
            await _respond(send, 200, orjson.dumps(row, option=_JSON_OPTIONS), [(b"etag", f'"{row["version"]}"'.encode())])
    elif path == "/healthz":
        await _respond(send, 200, b'{"status":"ok"}')
    else:
        await _respond(send, 404, _NOT_FOUND)
