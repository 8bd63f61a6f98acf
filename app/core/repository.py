"""Query helpers shared by the domain repositories."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import NotFound, PreconditionFailed
from app.core.ids import utcnow
from app.core.pagination import Page


def columns(table: Any, names: tuple[str, ...]) -> list[sa.ColumnElement]:
    """The named columns of a SQLModel table, for selecting only what the API shows."""
    cols = table.__table__.c
    return [cols[name] for name in names]


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
