"""Writing, sealing, listing and verifying audit events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import chain
from app.audit.models import AuditChain, AuditEvent
from app.core.db import insert_ignoring_conflicts
from app.core.fastsql import Statement
from app.core.pagination import Page
from app.core.repository import columns, fetch_page

PUBLIC = ("id", "at", "actor_type", "actor_id", "organization_id", "action", "resource_type", "resource_id",
          "patient_id", "request_id", "ip", "user_agent", "outcome", "details", "seq", "hash", "prev_hash")
_public = columns(AuditEvent, PUBLIC)
_insert = Statement(sa.insert(AuditEvent).values({name: sa.bindparam(name) for name in (
    "id", "organization_id", "at", "actor_type", "actor_id", "action", "resource_type", "resource_id",
    "patient_id", "request_id", "ip", "user_agent", "outcome", "details")}))
# Only the columns the audit log needs, so this module does not import the courses domain.
_course = sa.table("course", sa.column("id"), sa.column("organization_id"), sa.column("patient_id"))


async def insert(db: AsyncConnection, event: dict[str, Any]) -> None:
    """Append one unsealed event (sent with the transaction's next statement or its commit)."""
    await _insert.later(db, event)


async def patient_of_course(db: AsyncConnection, organization_id: str, course_id: str) -> str | None:
    """The patient of one of the organization's courses (None for another organization's or no course)."""
    query = sa.select(_course.c.patient_id).where(_course.c.id == course_id, _course.c.organization_id == organization_id)
    return await db.scalar(query)


# A skip scan of the unsealed index: one probe per organization with events waiting, never a
# pass over the events themselves (DISTINCT read every unsealed entry, dead versions included).
_WAITING = sa.text("""
WITH RECURSIVE waiting(organization_id) AS (
    SELECT min(organization_id) FROM audit_event WHERE seq IS NULL
    UNION ALL
    SELECT (SELECT min(e.organization_id) FROM audit_event e WHERE e.seq IS NULL AND e.organization_id > w.organization_id)
    FROM waiting w WHERE w.organization_id IS NOT NULL
)
SELECT organization_id FROM waiting WHERE organization_id IS NOT NULL
""")


async def organizations_with_unsealed(db: AsyncConnection) -> list[str]:
    """Organizations that have events waiting to be chained."""
    return list((await db.scalars(_WAITING)).all())


_head = sa.select(AuditChain.seq, AuditChain.hash).where(AuditChain.organization_id == sa.bindparam("org")).with_for_update()


async def _locked_head(db: AsyncConnection, organization_id: str) -> sa.Row:
    """The organization's chain head under its row lock, made at genesis on the first sealing."""
    head = (await db.execute(_head, {"org": organization_id})).first()
    if head is None:
        await insert_ignoring_conflicts(
            db, AuditChain.__table__, {"organization_id": organization_id, "seq": 0, "hash": chain.GENESIS},
            [AuditChain.organization_id],
        )
        head = (await db.execute(_head, {"org": organization_id})).one()
    return head


async def seal(db: AsyncConnection, organization_id: str, batch: int = 2000) -> int:
    """Chain up to ``batch`` of the organization's unsealed events after its head, under the head's row lock."""
    head = await _locked_head(db, organization_id)
    query = (
        sa.select(*_public)
        .where(AuditEvent.organization_id == organization_id, AuditEvent.seq.is_(None))
        .order_by(AuditEvent.at, AuditEvent.id)
        .limit(batch)
    )
    # Plain rows zipped with the names: a mapping per row cost a fifth of the sealer's time.
    rows = (await db.execute(query)).all()
    seq, prev_hash, sealed = head.seq, head.hash, []
    for row in rows:
        event = dict(zip(PUBLIC, row, strict=True))
        seq += 1
        event["seq"] = seq
        digest = chain.link(prev_hash, event)
        sealed.append((event["id"], seq, prev_hash, digest))
        prev_hash = digest
    if sealed:
        await _write_seals(db, sealed)
        await db.execute(
            sa.update(AuditChain).where(AuditChain.organization_id == organization_id).values(seq=seq, hash=prev_hash)
        )
    return len(sealed)


_SEAL_ALL = sa.text("""
UPDATE audit_event SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
FROM unnest(CAST(:ids AS varchar[]), CAST(:seqs AS integer[]), CAST(:prev_hashes AS varchar[]), CAST(:hashes AS varchar[]))
    AS v(id, seq, prev_hash, hash)
WHERE audit_event.id = v.id
""")
_seal_one = (
    sa.update(AuditEvent)
    .where(AuditEvent.id == sa.bindparam("b_id"))
    .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"), hash=sa.bindparam("hash"))
)


async def _write_seals(db: AsyncConnection, sealed: list[tuple[str, int, str, str]]) -> None:
    """Fill seq, prev_hash and hash of the sealed events: on PostgreSQL in one statement (arrays), not one per event."""
    if db.dialect.name == "postgresql":
        ids, seqs, prev_hashes, hashes = (list(column) for column in zip(*sealed, strict=True))
        await db.execute(_SEAL_ALL, {"ids": ids, "seqs": seqs, "prev_hashes": prev_hashes, "hashes": hashes})
        return
    await db.execute(_seal_one, [{"b_id": i, "seq": n, "prev_hash": p, "hash": h} for i, n, p, h in sealed])


async def list_page(db: AsyncConnection, organization_id: str, page: Page, filters: dict[str, Any]) -> dict:
    """A page of the organization's events, oldest first, with the list filters."""
    query = sa.select(*_public).where(AuditEvent.organization_id == organization_id)
    for name in ("actor_id", "patient_id", "action"):
        if filters.get(name) is not None:
            query = query.where(getattr(AuditEvent, name) == filters[name])
    for name, compare in (("since", AuditEvent.at.__ge__), ("until", AuditEvent.at.__lt__)):
        if filters.get(name) is not None:
            query = query.where(compare(_as_stored(db, filters[name])))
    return await fetch_page(db, query, AuditEvent.id, page)


def _as_stored(db: AsyncConnection, moment: datetime) -> datetime:
    """Timestamps compare in UTC; SQLite keeps them naive."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.replace(tzinfo=None) if db.dialect.name == "sqlite" else moment.replace(tzinfo=moment.tzinfo or UTC)


async def verify(db: AsyncConnection, organization_id: str | None = None) -> list[tuple[str, str]]:
    """Every chain's first break as (organization id, description); empty when all are intact."""
    orgs_query = sa.select(AuditChain.organization_id, AuditChain.seq, AuditChain.hash)
    if organization_id is not None:
        orgs_query = orgs_query.where(AuditChain.organization_id == organization_id)
    problems = []
    for head in (await db.execute(orgs_query.order_by(AuditChain.organization_id))).mappings().all():
        events_query = (
            sa.select(*_public)
            .where(AuditEvent.organization_id == head["organization_id"], AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq)
        )
        stream = await db.stream(events_query)
        events = (dict(r) async for r in stream.mappings())
        problem = chain.first_break([e async for e in events], dict(head))
        if problem:
            problems.append((head["organization_id"] or "(no organization)", problem))
    return problems
