"""Database: the async engine, one naming convention, and the per-request transaction."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_
from sqlmodel import SQLModel

from app.core.config import Settings

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
    _flush_before_sqlalchemy(engine.sync_engine)
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
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sa.exc.DBAPIError):  # the error that got us here is the one to report
                await _finish(conn, commit=False)
            raise
        await _finish(conn, commit=True)


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
            if not conn.invalidated:  # queued writes of an unfinished transaction never outlive it
                conn.sync_connection.info.pop(_PENDING, None)  # type: ignore[union-attr]
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


# --- asyncpg under SQLAlchemy ---------------------------------------------------------------
# SQLAlchemy's asyncpg adapter begins a transaction lazily, at the first statement it runs, and
# keeps it in `_transaction`. Statements run on asyncpg directly (app.core.fastsql) join the same
# transaction through the adapter's own begin, commit and error translation, so the two paths can
# never disagree about the transaction. These are the adapter's private methods (SQLAlchemy 2.1,
# pinned below 2.2); the whole suite runs through them on PostgreSQL.


def asyncpg_adapter(conn: AsyncConnection) -> Any:
    """SQLAlchemy's adapter around the asyncpg connection of a checked-out connection."""
    if conn.invalidated:  # reading .connection would reconnect, which needs SQLAlchemy's greenlet
        raise sa.exc.OperationalError("connection", None, ConnectionError("the connection was lost"))
    return conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]


async def begin_on_driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection, inside the transaction (begun here unless it already was)."""
    adapter = asyncpg_adapter(conn)
    if adapter._transaction is None:
        try:
            await adapter._start_transaction()
        except Exception as exc:
            raise await driver_error(conn, exc, "BEGIN", None) from exc
    return adapter._connection


async def _finish(conn: AsyncConnection, *, commit: bool) -> None:
    """Commit or roll back, through SQLAlchemy only if it began a transaction of its own."""
    if commit:
        await flush_writes(conn)
    elif not conn.invalidated:
        conn.sync_connection.info.pop(_PENDING, None)  # type: ignore[union-attr]
    if conn.in_transaction():
        await (conn.commit() if commit else conn.rollback())
        return
    if conn.invalidated and not commit:
        return  # the connection died with the transaction on it: nothing left to roll back
    adapter = asyncpg_adapter(conn)
    if adapter._transaction is None:
        return  # no statement ran
    end = adapter._transaction.commit if commit else adapter._transaction.rollback
    try:
        await adapter._call_and_discard(end)
    except Exception as exc:
        raise await driver_error(conn, exc, "COMMIT" if commit else "ROLLBACK", None) from exc


# --- writes sent together ------------------------------------------------------------------
# A request's writes that nothing reads back (the audit event, the outbox event, the new measure,
# the course's counters) wait on the connection and go in one round trip, as one statement with a
# WITH clause per write, before the transaction's next statement or its commit. PostgreSQL runs
# each such clause exactly once; order is kept because anything else waits for them to be sent.
_PENDING = "ipt_pending_writes"
_combined: dict[tuple[int, ...], str] = {}
_PARAMETER = re.compile(r"[$](\d+)")


def queue_write(conn: AsyncConnection, key: int, sql: str, args: list[Any]) -> None:
    """Queue one write (``key`` names its SQL, numbered $1..$n, for the cache of combinations)."""
    conn.sync_connection.info.setdefault(_PENDING, []).append((key, sql, args))  # type: ignore[union-attr]


def _combine(writes: list[tuple[int, str, list[Any]]]) -> str:
    clauses, offset = [], 0
    for n, (_, sql, args) in enumerate(writes):
        renumbered = _PARAMETER.sub(lambda m, base=offset: f"${int(m.group(1)) + base}", sql)
        clauses.append(f"w{n} AS ({renumbered})")
        offset += len(args)
    return "WITH " + ", ".join(clauses) + " SELECT 1"


async def flush_writes(conn: AsyncConnection) -> None:
    """Send the queued writes, in one round trip."""
    writes = None if conn.invalidated else conn.sync_connection.info.pop(_PENDING, None)  # type: ignore[union-attr]
    if not writes:
        return
    key = tuple(write[0] for write in writes)
    sql = _combined.get(key)
    if sql is None:
        sql = _combined[key] = writes[0][1] if len(writes) == 1 else _combine(writes)
    args = [arg for _, _, write_args in writes for arg in write_args]
    driver = await begin_on_driver(conn)
    try:
        await driver.execute(sql, *args)
    except Exception as exc:
        raise await driver_error(conn, exc, sql, args) from exc


def _flush_before_sqlalchemy(sync_engine: sa.Engine) -> None:
    """Statements SQLAlchemy runs see the queued writes too: they are sent first (inside its greenlet)."""

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn, _cursor, _statement, _parameters, _context, _executemany):
        writes = conn.info.get(_PENDING)
        if writes:
            await_(_flush_sync_side(conn))

    async def _flush_sync_side(conn: sa.Connection) -> None:
        writes = conn.info.pop(_PENDING)
        key = tuple(write[0] for write in writes)
        sql = _combined.get(key) or (writes[0][1] if len(writes) == 1 else _combine(writes))
        adapter = conn.connection.dbapi_connection
        if adapter._transaction is None:
            await adapter._start_transaction()
        try:
            await adapter._connection.execute(sql, *[arg for _, _, write_args in writes for arg in write_args])
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy wraps the adapter's translation as for its own statements
            adapter._handle_exception(exc)


async def driver_error(conn: AsyncConnection, exc: Exception, sql: str, params: Any) -> sa.exc.StatementError:
    """The exception SQLAlchemy would have raised for an asyncpg error, so one set of handlers maps it.

    A connection the error left dead is invalidated, so the pool never hands it out again.
    """
    dbapi = conn.dialect.loaded_dbapi
    if conn.invalidated:
        return sa.exc.DBAPIError.instance(sql, params, dbapi.OperationalError(str(exc)), dbapi.Error, connection_invalidated=True)
    adapter = asyncpg_adapter(conn)
    try:
        adapter._handle_exception(exc)
    except Exception as translated:  # noqa: BLE001 - the adapter raises its translation
        dbapi_error = translated
    if not isinstance(dbapi_error, dbapi.Error):  # a socket error, a timeout: the server is out of reach
        dbapi_error = dbapi.OperationalError(f"{type(exc).__name__}: {exc}")
    dead = conn.dialect.is_disconnect(dbapi_error, adapter, None)
    if dead:
        await conn.invalidate()
    return sa.exc.DBAPIError.instance(sql, params, dbapi_error, dbapi.Error, connection_invalidated=dead)


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
