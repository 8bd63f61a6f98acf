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


async def organizations_with_unsealed(db: AsyncConnection) -> list[str]:
    """Organizations that have events waiting to be chained."""
    query = sa.select(AuditEvent.organization_id).where(AuditEvent.seq.is_(None)).distinct()
    return list((await db.scalars(query)).all())


async def seal(db: AsyncConnection, organization_id: str, batch: int = 2000) -> int:
    """Chain the organization's unsealed events after its head, under the head's row lock."""
    await insert_ignoring_conflicts(
        db, AuditChain.__table__, {"organization_id": organization_id, "seq": 0, "hash": chain.GENESIS},
        [AuditChain.organization_id],
    )
    head = (
        await db.execute(sa.select(AuditChain.seq, AuditChain.hash).where(AuditChain.organization_id == organization_id).with_for_update())
    ).one()
    query = (
        sa.select(*_public)
        .where(AuditEvent.organization_id == organization_id, AuditEvent.seq.is_(None))
        .order_by(AuditEvent.at, AuditEvent.id)
        .limit(batch)
    )
    events = [dict(r) for r in (await db.execute(query)).mappings().all()]
    seq, prev_hash, sealed = head.seq, head.hash, []
    for event in events:
        seq += 1
        event["seq"] = seq
        digest = chain.link(prev_hash, event)
        sealed.append({"b_id": event["id"], "seq": seq, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    if sealed:
        stmt = (
            sa.update(AuditEvent)
            .where(AuditEvent.id == sa.bindparam("b_id"))
            .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"), hash=sa.bindparam("hash"))
        )
        await db.execute(stmt, sealed)
        await db.execute(
            sa.update(AuditChain).where(AuditChain.organization_id == organization_id).values(seq=seq, hash=prev_hash)
        )
    return len(sealed)


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
