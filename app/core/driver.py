"""PostgreSQL's asyncpg connection under SQLAlchemy: one transaction for both, and writes sent together."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util.concurrency import await_

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


async def begin_on_driver(conn: AsyncConnection, *, alone: bool = False) -> Any:
    """The asyncpg connection, inside the transaction (begun here unless it already was).

    ``alone``: the statement about to run needs no transaction around it when none is open yet, so
    none is begun (two round trips saved, BEGIN and COMMIT). That holds for a plain read before
    the first write (at READ COMMITTED each statement takes its own snapshot, in a transaction or
    not) and for the request's only write batch sent at its end (one statement is atomic).
    """
    adapter = asyncpg_adapter(conn)
    if adapter._transaction is None and not alone:
        try:
            await adapter._start_transaction()
        except Exception as exc:
            raise await driver_error(conn, exc, "BEGIN", None) from exc
    return adapter._connection


# --- through PgBouncer (transaction pooling) ------------------------------------------------
# No named statement may outlive its transaction there, so asyncpg's statement cache is off
# (app.core.db). Left alone, asyncpg would then spend two round trips on each statement (Parse
# and Describe, then Parse again with Bind and Execute). Instead each connection keeps its
# statements unnamed and described once: every run is one round trip (Parse, Bind, Execute, Sync)
# that PgBouncer sends to one server connection, in a transaction or not.
_UNNAMED = "ipt_unnamed_statements"
UNNAMED_KEPT = 500  # statements kept per connection (the hot path's are a few dozen)


def unnamed_statements(pool: sa.Pool) -> None:
    """Run the statements of this pool's connections unnamed, described once per connection."""

    @event.listens_for(pool, "connect")
    def _connected(_dbapi_conn, record):
        record.info[_UNNAMED] = {}  # cleared with the connection (SQLAlchemy empties info on invalidation)


async def fetch(info: dict, driver: Any, sql: str, args: list[Any]) -> list[Any]:
    """The rows of one statement on the asyncpg connection (``info``: its pool record's)."""
    statements = info.get(_UNNAMED)
    if statements is None:
        return await driver.fetch(sql, *args)  # asyncpg's cache of named statements
    statement = statements.get(sql)
    if statement is None:
        if len(statements) >= UNNAMED_KEPT:
            statements.clear()
        # asyncpg marks an unnamed statement "unprepared" when its cache is off: it is parsed again at each run.
        statement = statements[sql] = await driver.prepare(sql, name="")
    return await statement.fetch(*args)


async def end_transaction(conn: AsyncConnection, *, commit: bool) -> None:
    """Commit or roll back, through SQLAlchemy only if it began a transaction of its own."""
    if commit:
        await flush_writes(conn, last=True)
    else:
        drop_writes(conn)
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


def drop_writes(conn: AsyncConnection) -> None:
    """Forget the writes queued on a connection whose transaction did not finish (never sent)."""
    if not conn.invalidated:
        conn.sync_connection.info.pop(_PENDING, None)  # type: ignore[union-attr]


def queue_write(conn: AsyncConnection, key: int, sql: str, args: list[Any]) -> None:
    """Queue one write (``key`` names its SQL, numbered $1..$n, for the cache of combinations)."""
    conn.sync_connection.info.setdefault(_PENDING, []).append((key, sql, args))  # type: ignore[union-attr]


def _as_one_statement(writes: list[tuple[int, str, list[Any]]]) -> tuple[str, list[Any]]:
    """The queued writes as one statement (compiled once per combination) and its arguments."""
    key = tuple(write[0] for write in writes)
    sql = _combined.get(key)
    if sql is None:
        clauses, offset = [], 0
        for n, (_, write_sql, args) in enumerate(writes):
            renumbered = _PARAMETER.sub(lambda m, base=offset: f"${int(m.group(1)) + base}", write_sql)
            clauses.append(f"w{n} AS ({renumbered})")
            offset += len(args)
        sql = _combined[key] = writes[0][1] if len(writes) == 1 else "WITH " + ", ".join(clauses) + " SELECT 1"
    return sql, [arg for _, _, write_args in writes for arg in write_args]


async def flush_writes(conn: AsyncConnection, *, last: bool = False) -> None:
    """Send the queued writes, in one round trip (``last``: at commit, on their own if nothing else wrote)."""
    writes = None if conn.invalidated else conn.sync_connection.info.pop(_PENDING, None)  # type: ignore[union-attr]
    if not writes:
        return
    sql, args = _as_one_statement(writes)
    driver = await begin_on_driver(conn, alone=last)
    try:
        await fetch(conn.sync_connection.info, driver, sql, args)  # type: ignore[union-attr]
    except Exception as exc:
        raise await driver_error(conn, exc, sql, args) from exc


def flush_before_sqlalchemy(sync_engine: sa.Engine) -> None:
    """Statements SQLAlchemy runs see the queued writes too: they are sent first (inside its greenlet)."""

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn, _cursor, _statement, _parameters, _context, _executemany):
        writes = conn.info.get(_PENDING)
        if writes:
            await_(_flush_sync_side(conn))

    async def _flush_sync_side(conn: sa.Connection) -> None:
        sql, args = _as_one_statement(conn.info.pop(_PENDING))
        adapter = conn.connection.dbapi_connection
        if adapter._transaction is None:
            await adapter._start_transaction()
        try:
            await fetch(conn.info, adapter._connection, sql, args)
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
