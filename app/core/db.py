"""Database: the async engine, one naming convention, and the per-request transaction."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_
from sqlmodel import SQLModel

from app.core.config import ConfigError, Settings
from app.core.driver import asyncpg_adapter, drop_writes, end_transaction, flush_before_sqlalchemy, unnamed_statements

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
    connect_args: dict[str, Any] = {"timeout": 5}  # seconds to connect (asyncpg)
    if settings.database_pooler == "pgbouncer":
        # PgBouncer in transaction pooling hands each transaction whichever server connection is free,
        # so no named statement may outlive one: asyncpg's cache and SQLAlchemy's names are off, and
        # every statement is unnamed, parsed again with its Bind (app.core.driver.unnamed_statements).
        connect_args |= {"statement_cache_size": 0, "prepared_statement_name_func": _unnamed}
    engine = create_async_engine(
        settings.async_database_url,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # a round trip on every request: _ping_when_idle pings only where it pays
        connect_args=connect_args,
    )
    if settings.database_pooler == "pgbouncer":
        unnamed_statements(engine.sync_engine.pool)
    else:
        _refuse_a_pooler(engine.sync_engine.pool)
    _ping_when_idle(engine.sync_engine.pool)
    flush_before_sqlalchemy(engine.sync_engine)
    return engine


def _json_text(value: Any) -> str:
    """JSON columns as orjson writes them: several times faster than the json module."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _unnamed() -> str:
    return ""  # asyncpg's unnamed statement: replaced by the next Parse, never left behind on a server


POOLER = ("IPT_DATABASE_URL leads to a connection pooler, not to PostgreSQL itself (the server process is not the one "
          "the connection announced): set IPT_DATABASE_POOLER=pgbouncer, and IPT_DATABASE_DIRECT_URL to the server")


def _refuse_a_pooler(pool: sa.Pool) -> None:
    """Refuse a connection that reaches PostgreSQL through a pooler while the app believes it is direct.

    Through PgBouncer in transaction mode asyncpg's named statements land on other clients' server
    connections: it works alone and fails under load. A pooler announces a process id of its own
    (its cancel key), which PostgreSQL's pg_backend_pid() then contradicts: one round trip per new connection.
    """

    @event.listens_for(pool, "connect", insert=True)  # before the dialect's own queries, which would fail first
    def _connected(dbapi_conn, _record):
        driver = dbapi_conn._connection
        # Unnamed: a named statement could meet one another client left on the pooler's server connection.
        backend = await_(driver.prepare("SELECT pg_backend_pid()", name=""))
        if await_(backend.fetchval()) != driver.get_server_pid():
            raise ConfigError(POOLER)  # SQLAlchemy closes the connection


async def refuse_misconfiguration(engine: AsyncEngine) -> None:
    """Open one connection at start-up, so a pooler the settings do not name stops the process (ConfigError).

    A server that does not answer yet is no reason not to start: requests get 503 until it does.
    """
    if engine.dialect.name != "postgresql":
        return
    with contextlib.suppress(sa.exc.DBAPIError, OSError, TimeoutError):
        async with engine.connect():
            pass


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
    """A connection for one transaction, in turn; a server that cannot be reached is OperationalError (503)."""
    lease = lease_of(engine)
    await lease.wait_turn()
    try:
        conn = await lease.take()
        finished = False
        try:
            yield conn
            finished = True
        finally:
            drop_writes(conn)  # queued writes of an unfinished transaction never outlive it
            if finished and lease.reusable(conn):
                lease.keep(conn)
            else:
                await conn.close()  # back to SQLAlchemy's pool, which resets or replaces it
    finally:
        lease.turns.release()


class ConnectionLease:
    """The engine's connections, kept checked out between requests and handed out in arrival order.

    Checking a connection out of SQLAlchemy's pool and back in costs two greenlet switches and a
    Connection object: 110 us of CPU, a tenth of reading a course. So a connection that ends its
    request cleanly is kept here for the next one; one that ends in an error, or with a transaction
    still open on the server, goes back to the pool, which resets or replaces it. At most
    pool_size connections are held (one per turn), so the pool itself never runs dry.

    Turns: SQLAlchemy's async pool lets a newcomer take a connection that was just handed back
    ahead of the request already waiting for it, which then queues again at the back: under load a
    few requests waited many times longer than the rest (p99 at 4x the median). asyncio's
    semaphore queues first come, first served, so at most pool_size requests hold a turn at once.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        pool = engine.sync_engine.pool
        self.turns = asyncio.Semaphore(pool.size())
        self.timeout = pool.timeout()
        self.idle: list[tuple[AsyncConnection, float]] = []  # most recently used last

    async def wait_turn(self) -> None:
        """Wait for a turn; PoolTimeout (a 503) after the pool's timeout."""
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: that costs a task each time
                await self.turns.acquire()
        except TimeoutError:
            raise sa.exc.TimeoutError("no database connection became free in time") from None

    async def take(self) -> AsyncConnection:
        """The connection used last, checked first if it sat idle (the server may have restarted), or a new one."""
        while self.idle:
            conn, idle_since = self.idle.pop()
            if time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
                return conn
            try:
                alive = await _answers(conn)
            except BaseException:
                self.idle.append((conn, idle_since))  # cancelled mid-check: the next taker checks it again
                raise
            if alive:
                return conn
            await conn.invalidate()
            await conn.close()
        try:
            return await self.engine.connect()
        except (OSError, TimeoutError) as exc:  # asyncpg raises these on connect, not a DBAPI error
            raise sa.exc.OperationalError("connect", None, exc) from exc

    def reusable(self, conn: AsyncConnection) -> bool:
        """Whether a connection ended its transaction cleanly, on SQLAlchemy's side and the server's."""
        if conn.invalidated or conn.closed or conn.in_transaction():
            return False
        if self.engine.dialect.name != "postgresql":
            return True
        adapter = asyncpg_adapter(conn)
        return adapter._transaction is None and not adapter._connection.is_in_transaction()

    def keep(self, conn: AsyncConnection) -> None:
        """Hold a connection for the next request."""
        self.idle.append((conn, time.monotonic()))

    def release_idle(self) -> None:
        """Close the held connections (the engine is being disposed); runs inside SQLAlchemy's greenlet."""
        idle, self.idle = self.idle, []
        for conn, _ in idle:
            held = conn.sync_connection
            assert held is not None  # a held connection was never closed
            held.invalidate()  # closes it: the pool it came from is gone
            held.close()


async def _answers(conn: AsyncConnection) -> bool:
    """Whether a held connection still reaches the server (on the driver: no transaction begun)."""
    if conn.dialect.name != "postgresql":
        return True  # SQLite: a file, nothing to lose touch with
    try:
        await asyncpg_adapter(conn)._connection.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - whatever the failure, this connection is not to be used
        return False
    return True


def lease_of(engine: AsyncEngine) -> ConnectionLease:
    """The engine's lease, made on first use; disposing the engine closes its held connections."""
    sync_engine = engine.sync_engine
    lease = getattr(sync_engine, "_ipt_lease", None)
    if lease is None:
        # An attribute, not a weak dictionary: the held connections refer to the engine, and would
        # keep a dictionary's key alive forever; as an attribute, engine and lease go together.
        lease = sync_engine._ipt_lease = ConnectionLease(engine)  # type: ignore[attr-defined]
        event.listen(sync_engine, "engine_disposed", lambda _engine: lease.release_idle())
    return lease


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
