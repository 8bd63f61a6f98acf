"""Every query on Bulk Data export jobs and their files.

A job is worked by one worker at a time: it leases the job (``lease_owner`` and ``leased_until``)
and renews the lease with each part it writes; a worker that dies stops renewing, and another
takes the job over once the lease has run out, from the position the last committed part saved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import NotFound
from app.core.fastsql import Statement, insert_row
from app.core.ids import as_utc, utcnow
from app.core.models import new_row
from app.exports.models import BulkExport, BulkExportFile

ACTIVE = ("accepted", "in-progress")
_FILE_LISTING = (BulkExportFile.id, BulkExportFile.resource_type, BulkExportFile.count)


async def create(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert an accepted job."""
    row = new_row(BulkExport, {"status": "accepted", **values})
    await db.execute(sa.insert(BulkExport).values(row))
    return row


async def active_count(db: AsyncConnection, organization_id: str, by_type: str, by_id: str) -> int:
    """How many of the requester's jobs are not finished yet."""
    query = sa.select(sa.func.count()).select_from(BulkExport).where(
        BulkExport.organization_id == organization_id, BulkExport.requested_by_type == by_type,
        BulkExport.requested_by_id == by_id, BulkExport.status.in_(ACTIVE))
    return int(await db.scalar(query) or 0)


def _of_requester(export_id: str, organization_id: str, by_type: str, by_id: str) -> sa.ColumnElement[bool]:
    # Only whoever asked sees a job and its files: another caller, even of the organization, gets a 404.
    return sa.and_(BulkExport.id == export_id, BulkExport.organization_id == organization_id,
                   BulkExport.requested_by_type == by_type, BulkExport.requested_by_id == by_id)


async def get(db: AsyncConnection, export_id: str, organization_id: str, by_type: str, by_id: str) -> dict[str, Any]:
    """The requester's job, unexpired, or 404."""
    query = sa.select(BulkExport).where(_of_requester(export_id, organization_id, by_type, by_id))
    row = (await db.execute(query)).mappings().first()
    if row is None or (row["expires_at"] is not None and as_utc(row["expires_at"]) <= utcnow()):
        raise NotFound("No such export job (or it has expired or been cancelled).")
    return dict(row)


async def delete(db: AsyncConnection, export_id: str, organization_id: str, by_type: str, by_id: str) -> None:
    """Cancel a job or delete a finished one, with its files; 404 if it is not the requester's."""
    await get(db, export_id, organization_id, by_type, by_id)
    await db.execute(sa.delete(BulkExportFile).where(BulkExportFile.export_id == export_id))
    await db.execute(sa.delete(BulkExport).where(BulkExport.id == export_id))


async def files(db: AsyncConnection, export_id: str) -> list[dict[str, Any]]:
    """A finished job's files (id, type, count), by type and then in the order they were written."""
    query = sa.select(*_FILE_LISTING).where(BulkExportFile.export_id == export_id)
    rows = (await db.execute(query.order_by(BulkExportFile.resource_type, BulkExportFile.id))).mappings().all()
    return [dict(row) for row in rows]


MANIFEST_FILES = 1_000  # files a partial manifest lists at most


async def manifest_page(db: AsyncConnection, export_id: str, page: int) -> tuple[list[dict[str, Any]], bool] | None:
    """The files of a job's partial manifest ``page`` and whether a next one exists; None if there is no such page.

    A page that has not been returned yet takes the files no page lists (at most MANIFEST_FILES,
    the oldest first) and keeps them from then on, so a manifest lists the same files every time.
    A new page is made under a lock of its job (on PostgreSQL a transaction's advisory lock, which
    neither the worker's lease nor other jobs wait on; SQLite runs one writer at a time anyway), so
    two requests for the same new page list the same files.
    """
    listed = await _listed(db, export_id, page)
    if not listed and db.dialect.name == "postgresql":
        await db.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended("ipt.bulk." + export_id, 0))))
        listed = await _listed(db, export_id, page)  # made meanwhile by the request we waited for
    if not listed:
        last = await db.scalar(sa.select(sa.func.max(BulkExportFile.manifest_page)).where(BulkExportFile.export_id == export_id))
        if page != (last or 0) + 1:
            return ([], False) if page == 1 else None  # page 1 of a job that wrote nothing yet is empty
        unlisted = (sa.select(BulkExportFile.id).where(BulkExportFile.export_id == export_id,
                                                         BulkExportFile.manifest_page.is_(None))
                    .order_by(BulkExportFile.id).limit(MANIFEST_FILES))
        ids = list(await db.scalars(unlisted))
        if ids:
            await db.execute(sa.update(BulkExportFile).where(BulkExportFile.id.in_(ids)).values(manifest_page=page))
        listed = await _listed(db, export_id, page)
        if not listed and page > 1:
            return None
    later = sa.or_(BulkExportFile.manifest_page.is_(None), BulkExportFile.manifest_page > page)
    more = await db.scalar(sa.select(BulkExportFile.id).where(BulkExportFile.export_id == export_id, later).limit(1))
    return listed, more is not None


async def _listed(db: AsyncConnection, export_id: str, page: int) -> list[dict[str, Any]]:
    query = sa.select(*_FILE_LISTING).where(BulkExportFile.export_id == export_id, BulkExportFile.manifest_page == page)
    rows = (await db.execute(query.order_by(BulkExportFile.resource_type, BulkExportFile.id))).mappings().all()
    return [dict(row) for row in rows]


async def file_content(db: AsyncConnection, export_id: str, file_id: str, listed_only: bool = False) -> bytes:
    """One file's NDJSON, or 404 (``listed_only``: unless a returned manifest lists it)."""
    query = sa.select(BulkExportFile.content).where(BulkExportFile.id == file_id, BulkExportFile.export_id == export_id)
    if listed_only:
        query = query.where(BulkExportFile.manifest_page.is_not(None))
    content = await db.scalar(query)
    if content is None:
        raise NotFound("No such file in this export.")
    return bytes(content)


# the worker's side ---------------------------------------------------------------------------------
async def claim(db: AsyncConnection, owner: str, lease: timedelta) -> dict[str, Any] | None:
    """Lease the oldest job nobody holds (new, or its worker's lease ran out), or None."""
    now = utcnow()
    free = sa.and_(BulkExport.status.in_(ACTIVE),
                   sa.or_(BulkExport.leased_until.is_(None), BulkExport.leased_until < now))
    pick = sa.select(BulkExport.id).where(free).order_by(BulkExport.created_at).limit(1)
    if db.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    export_id = await db.scalar(pick)
    if export_id is None:
        return None
    claimed = await db.execute(sa.update(BulkExport).where(BulkExport.id == export_id, free).values(
        lease_owner=owner, leased_until=now + lease, status="in-progress"))
    if claimed.rowcount != 1:
        return None
    return dict((await db.execute(sa.select(BulkExport).where(BulkExport.id == export_id))).mappings().one())


# A part's statements, compiled once (app.core.fastsql): a big export stores hundreds of parts.
_HOLD = Statement(sa.update(BulkExport).where(
    BulkExport.id == sa.bindparam("b_id"), BulkExport.lease_owner == sa.bindparam("b_owner"),
    BulkExport.status == "in-progress").values(leased_until=sa.bindparam("leased_until")).returning(BulkExport.id))
_INSERT_FILE = insert_row(BulkExportFile)
_ADVANCE = Statement(sa.update(BulkExport).where(BulkExport.id == sa.bindparam("b_id")).values(
    position=sa.bindparam("position", type_=sa.JSON), written=sa.bindparam("written")))


async def hold(db: AsyncConnection, export_id: str, owner: str, lease: timedelta) -> bool:
    """Renew the lease, locking the job's row for this transaction; False if the job is gone or not ours."""
    renewed = await _HOLD.rows(db, {"b_id": export_id, "b_owner": owner, "leased_until": utcnow() + lease})
    return len(renewed) == 1


async def add_file(db: AsyncConnection, export_id: str, resource_type: str, count: int, content: bytes) -> None:
    """Store one NDJSON part."""
    await _INSERT_FILE.execute(db, new_row(BulkExportFile, {"export_id": export_id, "resource_type": resource_type,
                                                            "count": count, "content": content}))


async def advance(db: AsyncConnection, export_id: str, position: dict, written: int) -> None:
    """Save where the job has got to (with the parts of the same transaction)."""
    await _ADVANCE.execute(db, {"b_id": export_id, "position": position, "written": written})


async def finish(db: AsyncConnection, export_id: str, keep_for: timedelta, error: str | None = None) -> None:
    """Mark the job completed (or failed, with a message that names no data); its files expire after ``keep_for``."""
    now = utcnow()
    await db.execute(sa.update(BulkExport).where(BulkExport.id == export_id).values(
        status="failed" if error else "completed", error=error, completed_at=now, expires_at=now + keep_for,
        lease_owner=None, leased_until=None))


async def purge_expired(db: AsyncConnection) -> int:
    """Delete expired jobs and their files."""
    expired = sa.select(BulkExport.id).where(BulkExport.expires_at < utcnow())
    await db.execute(sa.delete(BulkExportFile).where(BulkExportFile.export_id.in_(expired)))
    result = await db.execute(sa.delete(BulkExport).where(BulkExport.expires_at < utcnow()))
    return result.rowcount or 0
