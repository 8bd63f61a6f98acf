"""The hot path's statements on PostgreSQL, run straight on the asyncpg connection.

SQLAlchemy's async layer costs several times the driver's own work per statement (a greenlet
hop, cache-key generation, result wrapping). The few statements every request runs (reading one
course or patient, the audit insert, the caller check when its account is not cached) are
compiled once and executed on the transaction's own asyncpg connection, inside the same
transaction (app.core.db's bridge). Elsewhere (and on SQLite) they go through SQLAlchemy as usual.
Results are the same either way: values are bound through SQLAlchemy's own bind processors, and
asyncpg returns dates, timestamps, booleans and (with SQLAlchemy's codec) parsed JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.driver import begin_on_driver, driver_error, fetch, flush_writes, queue_write

Binds = list[tuple[str, Any, "Callable[[Any], Any] | None"]]  # in $n order: name, default value, bind processor


def _compile(statement: sa.Executable, dialect: sa.Dialect) -> tuple[str, Binds]:
    compiled = statement.compile(dialect=dialect)
    defaults = compiled.params
    binds = [(name, defaults.get(name), compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
             for name in compiled.positiontup or ()]
    return str(compiled), binds


def _arguments(binds: Binds, params: dict[str, Any]) -> list[Any]:
    args = []
    for name, default, process in binds:
        value = params.get(name, default)
        args.append(process(value) if process is not None and value is not None else value)
    return args


def for_driver(statement: sa.Executable, dialect: sa.Dialect) -> tuple[str, list[Any]]:
    """A statement built per request (its values bound in it) as asyncpg takes it: SQL text and arguments."""
    sql, binds = _compile(statement, dialect)
    return sql, _arguments(binds, {})


class Statement:
    """A SQLAlchemy Core statement with its PostgreSQL text compiled once."""

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        # A plain SELECT (no row lock) runs without a transaction when none is open (driver.begin_on_driver).
        self._alone = isinstance(statement, sa.Select) and statement._for_update_arg is None
        self._sql: str | None = None
        self._binds: Binds = []

    def _compiled(self, dialect: sa.Dialect) -> str:
        if self._sql is None:
            self._sql, self._binds = _compile(self.statement, dialect)
        return self._sql

    async def rows(self, db: AsyncConnection, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every row as a dict."""
        return [dict(row) for row in await self.mappings(db, params)]

    async def mappings(self, db: AsyncConnection, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        """Every row as the driver returns it, read-only (asyncpg's records: no copy into dicts)."""
        if db.dialect.name != "postgresql":
            result = await db.execute(self.statement, params)
            return list(result.mappings().all()) if result.returns_rows else []
        return await self._records(db, params)

    async def records(self, db: AsyncConnection, params: dict[str, Any]) -> list[Sequence[Any]]:
        """Every row, read by position: asyncpg's records on PostgreSQL, SQLAlchemy's rows elsewhere."""
        if db.dialect.name != "postgresql":
            result = await db.execute(self.statement, params)
            return list(result.all()) if result.returns_rows else []
        return await self._records(db, params)

    async def _records(self, db: AsyncConnection, params: dict[str, Any]) -> Any:
        await flush_writes(db)
        sql = self._compiled(db.dialect)
        args = _arguments(self._binds, params)
        driver = await begin_on_driver(db, alone=self._alone)
        try:
            records = await fetch(db.sync_connection.info, driver, sql, args)  # type: ignore[union-attr]
        except Exception as exc:
            raise await driver_error(db, exc, sql, args) from exc
        return records

    async def first(self, db: AsyncConnection, params: dict[str, Any]) -> dict[str, Any] | None:
        """The first row, or None."""
        rows = await self.rows(db, params)
        return rows[0] if rows else None

    async def execute(self, db: AsyncConnection, params: dict[str, Any]) -> None:
        """Run a statement that returns nothing."""
        await self.rows(db, params)

    async def later(self, db: AsyncConnection, params: dict[str, Any]) -> None:
        """Run a write whose result nobody reads with the transaction's next statement or its commit.

        On PostgreSQL the writes queued this way go in one round trip (``flush``), before any other
        statement of the transaction runs, so the transaction sees its own writes in order as usual.
        """
        if db.dialect.name != "postgresql":
            await self.execute(db, params)
            return
        sql = self._compiled(db.dialect)
        queue_write(db, id(self), sql, _arguments(self._binds, params))


def insert_row(table: Any) -> Statement:
    """INSERT of one whole row (every column a bind parameter named after it): run it with new_row's dict."""
    return Statement(sa.insert(table).values({column.name: sa.bindparam(column.name) for column in table.__table__.columns}))


class UpdateById:
    """UPDATE ... WHERE id = :b_id RETURNING ..., one compiled statement per set of changed columns."""

    def __init__(self, table: Any, returning: list[Any], extra: dict[str, Any] | None = None) -> None:
        self.table = table
        self.returning = returning
        self.extra = extra or {}  # values every update sets (a version bump, updated_at)
        self._by_columns: dict[tuple[str | bool, ...], Statement] = {}

    def _statement(self, names: tuple[str, ...], returning: bool) -> Statement:
        statement = self._by_columns.get((*names, returning))
        if statement is None:
            values = {name: sa.bindparam(f"v_{name}") for name in names} | self.extra
            stmt = sa.update(self.table).where(self.table.id == sa.bindparam("b_id")).values(values)
            statement = Statement(stmt.returning(*self.returning) if returning else stmt)
            self._by_columns[(*names, returning)] = statement
        return statement

    async def one(self, db: AsyncConnection, row_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """The updated row, or None when no row has the id."""
        params = {"b_id": row_id, **{f"v_{name}": value for name, value in changes.items()}}
        return await self._statement(tuple(sorted(changes)), True).first(db, params)

    async def later(self, db: AsyncConnection, row_id: str, changes: dict[str, Any]) -> None:
        """The same update, for a row known to exist, sent with the next statement or the commit."""
        params = {"b_id": row_id, **{f"v_{name}": value for name, value in changes.items()}}
        await self._statement(tuple(sorted(changes)), False).later(db, params)
