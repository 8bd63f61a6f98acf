"""Database: the async engine, one naming convention, and the per-request transaction."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from app.core.config import Settings
from app.core.driver import drop_writes, end_transaction, flush_before_sqlalchemy

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
PING_AFTER_IDLE_SECONDS = 1.0
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata = SQLModel.metadata


def make_engine(settings: Settings) -> AsyncEngine:
    """The app's async engine: aiosqlite in WAL mode, or asyncpg with a pool."""
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.async_database_url,
            connect_args={"timeout": 30, "isolation_level": None},
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout_seconds,
        )
        _sqlite_pragmas(engine.sync_engine)
        return engine
    engine = create_async_engine(
        settings.async_database_url,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # a round trip on every request: _ping_when_idle pings only where it pays
        connect_args={"timeout": 5},  # seconds to connect (asyncpg)
    )
    _ping_when_idle(engine.sync_engine.pool)
    flush_before_sqlalchemy(engine.sync_engine)
    return engine


def _json_text(value: Any) -> str:
    """JSON columns as orjson writes them: several times faster than the json module."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _ping_when_idle(pool: sa.Pool) -> None:
    """Check a pooled connection that sat idle before handing it out; replace it if the server dropped it.

    After a database restart with no traffic the pool holds only dead connections, and without this
    the first requests would each fail with a 503 on one. A connection in steady use is not pinged:
    a disconnect seen by a request invalidates the whole pool anyway.
    """

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):
        if dbapi_conn._connection.is_in_transaction():
            # A request cancelled mid-rollback (a client gone from a stream) can hand back a connection
            # with its transaction still open: never reuse it; the pool opens a fresh one instead.
            raise sa.exc.DisconnectionError("connection returned inside a transaction")
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception as exc:
            raise sa.exc.DisconnectionError(type(exc).__name__) from exc


def _sqlite_pragmas(sync_engine: sa.Engine) -> None:
    """WAL for concurrent readers, a busy timeout, and foreign keys (off by default in SQLite)."""

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn):
        # pysqlite's own transaction handling is off (isolation_level=None): we say BEGIN ourselves.
        # Writers take the write lock up front so that read-then-write checks cannot interleave.
        mode = conn.info.get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@asynccontextmanager
async def transaction(engine: AsyncEngine, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """One transaction: committed when the block ends normally, rolled back on any error."""
    async with _connect(engine) as conn:
        if engine.dialect.name == "sqlite":
            conn.sync_connection.info["sqlite_begin"] = "IMMEDIATE" if write else "DEFERRED"  # type: ignore[union-attr]
            async with conn.begin():
                yield conn
            return
        # PostgreSQL: most requests run only app.core.fastsql's statements, straight on asyncpg, so
        # SQLAlchemy never began a transaction of its own; then end it on asyncpg, skipping its layer.
        # The transaction begins at the first statement that needs one (a write or a locking read):
        # plain reads before it, and a lone write batch at the end, run as statements of their own.
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sa.exc.DBAPIError):  # the error that got us here is the one to report
                await end_transaction(conn, commit=False)
            raise
        await end_transaction(conn, commit=True)


@asynccontextmanager
async def _connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection, in turn; a server that cannot be reached is OperationalError (503), as any DBAPI error."""
    turns = await _wait_turn(engine)
    try:
        try:
            conn = await engine.connect()
        except (OSError, TimeoutError) as exc:  # asyncpg raises these on connect, not a DBAPI error
            raise sa.exc.OperationalError("connect", None, exc) from exc
        try:
            yield conn
        finally:
            drop_writes(conn)  # queued writes of an unfinished transaction never outlive it
            await conn.close()
    finally:
        turns.release()


_turns: weakref.WeakKeyDictionary[sa.Engine, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def _wait_turn(engine: AsyncEngine) -> asyncio.Semaphore:
    """Wait for a pooled connection in arrival order (PoolTimeout, a 503, after the pool's timeout); release it after.

    SQLAlchemy's async pool lets a newcomer take a connection that was just handed back ahead of
    the request already waiting for it, which then queues again at the back: under load a few
    requests waited many times longer than the rest (p99 at 4x the median). asyncio's semaphore
    queues first come, first served, so at most pool_size requests reach the pool at once.
    """
    turns = _turns.get(engine.sync_engine)
    if turns is None:
        turns = _turns[engine.sync_engine] = asyncio.Semaphore(engine.sync_engine.pool.size())
    try:
        async with asyncio.timeout(engine.sync_engine.pool.timeout()):  # not wait_for: that costs a task each time
            await turns.acquire()
    except TimeoutError:
        raise sa.exc.TimeoutError("no database connection became free in time") from None
    return turns


async def insert_ignoring_conflicts(
    conn: AsyncConnection, table: sa.Table, values: dict, returning: list[sa.ColumnElement]
) -> dict | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: the new row, or None when a unique key clashed."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(values).on_conflict_do_nothing().returning(*returning)
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row is not None else None
