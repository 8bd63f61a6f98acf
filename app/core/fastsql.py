"""The hot path's statements on PostgreSQL, run straight on the psycopg connection.

SQLAlchemy's async layer costs several times the driver's own work per statement (a greenlet
hop, cache-key generation, result wrapping). The few statements every request runs (the caller
check, reading one course or patient, the audit insert) are compiled once and executed on the
transaction's own psycopg connection, inside the same transaction. Elsewhere (and on SQLite)
they go through SQLAlchemy as usual. Results are the same either way: psycopg already returns
dates, timestamps, booleans and parsed JSON.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Json
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import as_dbapi_error, driver_connection


class Statement:
    """A SQLAlchemy Core statement with its PostgreSQL text compiled once."""

    def __init__(self, statement: sa.Executable, json_params: tuple[str, ...] = ()) -> None:
        self.statement = statement
        self.json_params = json_params
        self._sql: str | None = None
        self._defaults: dict[str, Any] = {}
        self._names: tuple[str, ...] | None = None  # the result's column names, read once from the first run

    def _compiled(self, dialect: sa.Dialect) -> str:
        if self._sql is None:
            compiled = self.statement.compile(dialect=dialect)
            self._defaults = dict(compiled.params)
            self._sql = str(compiled)
        return self._sql

    async def rows(self, db: AsyncConnection, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every row as a dict."""
        if db.dialect.name != "postgresql":
            result = await db.execute(self.statement, params)
            return [dict(r) for r in result.mappings().all()] if result.returns_rows else []
        sql = self._compiled(db.dialect)
        values = {**self._defaults, **params}
        for name in self.json_params:
            if values.get(name) is not None:
                values[name] = Json(values[name])
        try:
            async with driver_connection(db).cursor() as cursor:
                await cursor.execute(sql, values, prepare=True)
                if self._names is None:
                    self._names = tuple(column.name for column in cursor.description or ())
                if not self._names:
                    return []
                names = self._names
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
        except psycopg.Error as exc:
            raise as_dbapi_error(exc, sql, values) from exc

    async def first(self, db: AsyncConnection, params: dict[str, Any]) -> dict[str, Any] | None:
        """The first row, or None."""
        rows = await self.rows(db, params)
        return rows[0] if rows else None

    async def execute(self, db: AsyncConnection, params: dict[str, Any]) -> None:
        """Run a statement that returns nothing."""
        await self.rows(db, params)
