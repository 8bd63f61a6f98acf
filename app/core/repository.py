"""Query helpers shared by the domain repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from app.core.errors import NotFound, PreconditionFailed
from app.core.fastsql import Statement
from app.core.ids import utcnow
from app.core.pagination import Page


def columns(table: Any, names: tuple[str, ...]) -> list[sa.ColumnElement]:
    """The named columns of a SQLModel table, for selecting only what the API shows."""
    cols = table.__table__.c
    return [cols[name] for name in names]


class AsWritten(ColumnElement):
    """A UTC timestamp column read as the API writes it (``app.core.http.dumps``): RFC 3339 text on PostgreSQL.

    asyncpg builds a datetime for each timestamptz value, a quarter of the driver's time on a page
    of courses; PostgreSQL writes the same text for about as much of its own CPU, off the API's
    process. Elsewhere it is the column itself, and dumps writes the datetime. Either way the JSON
    is the same, byte for byte.
    """

    inherit_cache = True
    _traverse_internals: ClassVar = [("column", InternalTraversal.dp_clauseelement)]  # in the cache key: which column

    def __init__(self, column: sa.ColumnElement) -> None:
        self.column = column
        self.type = column.type


@compiles(AsWritten)
def _as_written(element: AsWritten, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(AsWritten, "postgresql")
def _as_written_by_postgresql(element: AsWritten, compiler: Any, **kw: Any) -> str:
    # As orjson writes an aware UTC datetime with OPT_UTC_Z: six digits of microseconds, or none when zero.
    utc = f"({compiler.process(element.column, **kw)} AT TIME ZONE 'UTC')"
    return f"(replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || 'Z')"


def as_written(selected: list[sa.ColumnElement]) -> list[sa.ColumnElement]:
    """``selected`` with each timezone-aware timestamp column read as ``AsWritten`` text, under its own name."""
    return [AsWritten(c).label(c.name) if isinstance(c.type, sa.DateTime) and c.type.timezone else c for c in selected]


async def one_or_404(db: AsyncConnection, query: sa.Select, message: str) -> dict[str, Any]:
    """The query's first row as a dict, or 404 with ``message``."""
    row = (await db.execute(query)).mappings().first()
    if row is None:
        raise NotFound(message)
    return dict(row)


async def fetch_page(db: AsyncConnection, query: sa.Select, id_column: sa.ColumnElement, page: Page) -> dict:
    """One keyset page over ids that sort in creation order (UUIDv7)."""
    if page.after is not None:
        query = query.where(id_column > page.after)
    rows = (await db.execute(query.order_by(id_column).limit(page.limit + 1))).mappings().all()
    return page.response([dict(r) for r in rows])


class KeysetList:
    """A list's keyset-paged SELECT, built and compiled once per combination of conditions, run on the driver.

    Pages hold the rows as the driver returns them (read-only mappings): the caller presents them.

    ``conditions`` names each WHERE clause a request may use, as a function of its bind parameter;
    a page request passes the names it uses with their values. Rebuilding the query per request
    cost more than reading the page (SQLAlchemy's cache key alone, and its result rows).
    """

    def __init__(self, selected: list[sa.ColumnElement], id_column: sa.ColumnElement,
                 conditions: dict[str, Callable[[sa.BindParameter], sa.ColumnElement[bool]]]) -> None:
        self.selected = selected
        self.id_column = id_column
        self.conditions = conditions
        self._statements: dict[tuple[tuple[str, ...], bool], Statement] = {}

    async def page(self, db: AsyncConnection, page: Page, where: dict[str, Any]) -> dict:
        """One page: rows whose conditions hold, after the page's cursor, in id order."""
        key = (tuple(sorted(where)), page.after is not None)
        statement = self._statements.get(key)
        if statement is None:
            query = sa.select(*self.selected)
            for name in key[0]:
                query = query.where(self.conditions[name](sa.bindparam(f"w_{name}")))
            if page.after is not None:
                query = query.where(self.id_column > sa.bindparam("after"))
            query = query.order_by(self.id_column).limit(sa.bindparam("limit", type_=sa.Integer))
            statement = self._statements[key] = Statement(query)
        params = {f"w_{name}": value for name, value in where.items()} | {"after": page.after, "limit": page.limit + 1}
        return page.response(await statement.mappings(db, params))


async def update_versioned(
    db: AsyncConnection,
    table: Any,
    where: sa.ColumnElement[bool],
    expected_version: int,
    changes: dict[str, Any],
    returning: list[sa.ColumnElement],
    *,
    touch: bool = True,
) -> dict:
    """Apply changes only if the row is at ``expected_version``: 404 when absent, 412 when stale."""
    values = dict(changes, version=table.version + 1)
    if touch:
        values["updated_at"] = utcnow()
    stmt = sa.update(table).where(where, table.version == expected_version).values(values).returning(*returning)
    row = (await db.execute(stmt)).mappings().first()
    if row is not None:
        return dict(row)
    await require_version(db, table, where, expected_version)
    raise PreconditionFailed("The resource changed since you read it; read it again and retry.")


async def require_version(db: AsyncConnection, table: Any, where: sa.ColumnElement[bool], expected_version: int) -> None:
    """404 when the row is absent, 412 when it is not at ``expected_version`` (locks it on PostgreSQL)."""
    current = await db.scalar(sa.select(table.version).where(where).with_for_update())
    if current is None:
        raise NotFound()
    if current != expected_version:
        raise PreconditionFailed("The resource changed since you read it; read it again and retry.")
