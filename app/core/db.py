"""Database: the async engine, one naming convention, and the per-request transaction."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
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
    """The app's async engine: aiosqlite in WAL mode, or psycopg 3 with a pool."""
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
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,  # a round trip on every request: _ping_when_idle pings only where it pays
        connect_args={"connect_timeout": 5},
    )
    _ping_when_idle(engine.sync_engine.pool)
    return engine


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
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.sync_connection.info["sqlite_begin"] = "IMMEDIATE" if write else "DEFERRED"  # type: ignore[union-attr]
            async with conn.begin():
                yield conn
            return
        # PostgreSQL: psycopg begins implicitly at the first statement. Most requests run only the
        # compiled statements of app.core.fastsql straight on psycopg, so SQLAlchemy never began a
        # transaction of its own; then commit (or roll back) on psycopg directly, skipping its layer.
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sa.exc.DBAPIError):  # the error that got us here is the one to report
                await _finish(conn, commit=False)
            raise
        await _finish(conn, commit=True)


async def _finish(conn: AsyncConnection, *, commit: bool) -> None:
    """Commit or roll back a PostgreSQL transaction, through SQLAlchemy only if it began one."""
    if conn.in_transaction():
        await (conn.commit() if commit else conn.rollback())
        return
    driver = driver_connection(conn)
    try:
        await (driver.commit() if commit else driver.rollback())
    except psycopg.Error as exc:
        if driver.broken:
            await conn.invalidate()  # never hand a dead connection to the next request
        raise as_dbapi_error(exc, "COMMIT" if commit else "ROLLBACK", None) from exc


def driver_connection(conn: AsyncConnection) -> psycopg.AsyncConnection:
    """The psycopg connection under a checked-out SQLAlchemy connection (no greenlet hop)."""
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


def as_dbapi_error(exc: psycopg.Error, sql: str, params: Any) -> sa.exc.DBAPIError:
    """The exception SQLAlchemy would have raised (OperationalError, IntegrityError, ...), so one set of handlers maps it."""
    return sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error)


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
