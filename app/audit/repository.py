"""Writing, sealing, listing and verifying audit events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.audit import chain
from app.audit.models import AuditArchive, AuditChain, AuditEvent, AuditSeal
from app.core.db import insert_ignoring_conflicts, transaction
from app.core.fastsql import Statement
from app.core.pagination import Page
from app.core.repository import columns, fetch_page

EVENT = ("id", "at", "actor_type", "actor_id", "organization_id", "action", "resource_type", "resource_id",
         "patient_id", "request_id", "ip", "user_agent", "outcome", "details")
SEAL = ("seq", "hash", "prev_hash")
PUBLIC = EVENT + SEAL
_event = columns(AuditEvent, EVENT)
# An event with its place in the chain (null until sealed).
_public = [*_event, *columns(AuditSeal, SEAL)]
# A seal finds its event by (id, at): on PostgreSQL ``at`` names the one partition to look in.
its_event = sa.and_(AuditSeal.event_id == AuditEvent.id, AuditSeal.at == AuditEvent.at)
_sealed_or_not = sa.outerjoin(AuditEvent, AuditSeal, its_event)
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


# Sealing follows (tx, id): commit order (see AuditEvent.tx). On PostgreSQL only events below the
# horizon are taken: every transaction below the oldest one still running has ended, so its events
# are all visible (or never will be). On SQLite the sealer holds the write lock, so every row is final.
_HORIZON_SQL = {"postgresql": "pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                "sqlite": "(SELECT coalesce(max(rowid), -1) + 1 FROM audit_event)"}
_HORIZON = {dialect: sa.text(f"SELECT {sql}") for dialect, sql in _HORIZON_SQL.items()}


AHEAD = ("is ahead of this database's transaction ids, so new events cannot be sealed: restored by pg_dump "
         "into a new cluster? See the README (Audit).")


class ChainAheadOfDatabase(Exception):
    """A chain head stands past every transaction this database has run: it was restored into a new cluster."""

    def __init__(self, organization_id: str) -> None:
        super().__init__(f"the audit chain of organization {organization_id or '(none)'} {AHEAD}")


async def _horizon(db: AsyncConnection, head: sa.Row) -> int:
    """The position below which every event is final; refuses a head at or past it (always behind it otherwise)."""
    horizon = await db.scalar(_HORIZON[db.dialect.name])
    if head.position >= horizon:
        raise ChainAheadOfDatabase(head.organization_id)
    return horizon


# A skip scan of the organizations that have events (one index probe each, never a pass over the
# events), each kept if an event after its chain head's (tx, id) and below the horizon is waiting,
# or if its head is past the horizon (for seal() to say so).
_WAITING = """
WITH RECURSIVE orgs(organization_id) AS (
    SELECT min(organization_id) FROM audit_event
    UNION ALL
    SELECT (SELECT min(e.organization_id) FROM audit_event e WHERE e.organization_id > o.organization_id)
    FROM orgs o WHERE o.organization_id IS NOT NULL
)
SELECT o.organization_id FROM orgs o LEFT JOIN audit_chain c ON c.organization_id = o.organization_id
WHERE o.organization_id IS NOT NULL AND (c.position >= {horizon} OR EXISTS (
    SELECT 1 FROM audit_event e WHERE e.organization_id = o.organization_id
    AND (e.tx, e.id) > (coalesce(c.position, -1), coalesce(c.event_id, '')) AND e.tx < {horizon}))
"""
_WAITING_BY_DIALECT = {dialect: sa.text(_WAITING.format(horizon=sql)) for dialect, sql in _HORIZON_SQL.items()}


# A transaction id of its own, committed at once: larger than that of every transaction begun before.
_MARK = sa.text("SELECT pg_current_xact_id()::text::bigint")


async def wait_for_older_writers(engine: AsyncEngine, seconds: float) -> bool:
    """Wait until every transaction begun before now has ended, so all committed events can be sealed; False on timeout.

    PostgreSQL's horizon is the cluster's oldest running transaction (any database's). SQLite: at once.
    """
    if engine.dialect.name != "postgresql":
        return True
    async with transaction(engine, write=True) as db:
        mark = await db.scalar(_MARK)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with transaction(engine, write=False) as db:  # plain reads: a fresh snapshot each
        while await db.scalar(_HORIZON["postgresql"]) <= mark:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
    return True


async def organizations_with_unsealed(db: AsyncConnection) -> list[str]:
    """Organizations that have events waiting to be chained."""
    return list((await db.scalars(_WAITING_BY_DIALECT[db.dialect.name])).all())


_head = (sa.select(AuditChain.organization_id, AuditChain.seq, AuditChain.hash, AuditChain.position, AuditChain.event_id)
         .where(AuditChain.organization_id == sa.bindparam("org")).with_for_update())


async def _locked_head(db: AsyncConnection, organization_id: str) -> sa.Row:
    """The organization's chain head under its row lock, made at genesis on the first sealing."""
    head = (await db.execute(_head, {"org": organization_id})).first()
    if head is None:
        await insert_ignoring_conflicts(
            db, AuditChain.__table__, {"organization_id": organization_id, "seq": 0, "hash": chain.GENESIS,
                                       "position": -1, "event_id": ""},
            [AuditChain.organization_id],
        )
        head = (await db.execute(_head, {"org": organization_id})).one()
    return head


async def seal(db: AsyncConnection, organization_id: str, batch: int = 2000) -> int:
    """Chain up to ``batch`` of the organization's unsealed events after its head, under the head's row lock."""
    head = await _locked_head(db, organization_id)
    horizon = await _horizon(db, head)
    query = (
        sa.select(AuditEvent.tx, *_event)
        .where(AuditEvent.organization_id == organization_id,
               sa.tuple_(AuditEvent.tx, AuditEvent.id) > sa.tuple_(head.position, head.event_id),
               AuditEvent.tx < horizon)
        .order_by(AuditEvent.tx, AuditEvent.id)
        .limit(batch)
    )
    # Plain rows zipped with the names: a mapping per row cost a fifth of the sealer's time.
    rows = (await db.execute(query)).all()
    if not rows:
        return 0
    walk = chain.Walk(head.seq, head.hash)
    sealed = chain.extend(walk, (dict(zip(EVENT, row[1:], strict=True)) for row in rows))
    await _write_seals(db, organization_id, sealed)
    await db.execute(sa.update(AuditChain).where(AuditChain.organization_id == organization_id)
                     .values(seq=walk.seq, hash=walk.hash, position=rows[-1][0], event_id=sealed[-1][0]))
    return len(sealed)


_SEAL_ALL = sa.text("""
INSERT INTO audit_seal (event_id, organization_id, seq, prev_hash, hash, at)
SELECT v.event_id, :org, v.seq, v.prev_hash, v.hash, v.at
FROM unnest(CAST(:ids AS varchar[]), CAST(:seqs AS integer[]), CAST(:prev_hashes AS varchar[]), CAST(:hashes AS varchar[]),
            CAST(:ats AS timestamptz[]))
    AS v(event_id, seq, prev_hash, hash, at)
""")
_seal_one = sa.insert(AuditSeal)


async def _write_seals(db: AsyncConnection, organization_id: str, sealed: list[tuple[str, int, str, str, datetime]]) -> None:
    """Add the sealed events' places in the chain: on PostgreSQL in one statement (arrays), not one per event."""
    if db.dialect.name == "postgresql":
        ids, seqs, prev_hashes, hashes, ats = (list(column) for column in zip(*sealed, strict=True))
        await db.execute(_SEAL_ALL, {"org": organization_id, "ids": ids, "seqs": seqs, "prev_hashes": prev_hashes,
                                     "hashes": hashes, "ats": ats})
        return
    await db.execute(_seal_one, [{"event_id": i, "organization_id": organization_id, "seq": n, "prev_hash": p, "hash": h,
                                  "at": at} for i, n, p, h, at in sealed])


async def list_page(db: AsyncConnection, organization_id: str, page: Page, filters: dict[str, Any]) -> dict:
    """A page of the organization's events, oldest first, with the list filters."""
    query = sa.select(*_public).select_from(_sealed_or_not).where(AuditEvent.organization_id == organization_id)
    for name in ("actor_id", "patient_id", "action"):
        if filters.get(name) is not None:
            query = query.where(getattr(AuditEvent, name) == filters[name])
    for name, compare in (("since", AuditEvent.at.__ge__), ("until", AuditEvent.at.__lt__)):
        if filters.get(name) is not None:
            query = query.where(compare(as_stored(db, filters[name])))
    return await fetch_page(db, query, AuditEvent.id, page)


def as_stored(db: AsyncConnection, moment: datetime) -> datetime:
    """Timestamps compare in UTC; SQLite keeps them naive."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.replace(tzinfo=None) if db.dialect.name == "sqlite" else moment.replace(tzinfo=moment.tzinfo or UTC)


# Events the sealer can never reach: no position (written past the column's default or the
# SQLite trigger), and no seal. Events sealed before migration 0010 have no position either.
_UNPLACED = (sa.select(sa.func.count(), sa.func.min(AuditEvent.id))
             .where(AuditEvent.organization_id == sa.bindparam("org"), AuditEvent.tx.is_(None),
                    ~sa.exists().where(its_event)))


async def _unplaced(db: AsyncConnection, organization_id: str) -> str | None:
    """Describe the organization's events that no sealing pass will ever chain, or None."""
    count, first = (await db.execute(_UNPLACED, {"org": organization_id})).one()
    return f"unsealable: {count} event(s) without a position, first {first}" if count else None


# An organization's sealed events in seq order, each with its event (by (id, at): one partition's
# index), or with none when no event stands at the seal's (id, at).
SEALED = (sa.select(AuditSeal.event_id.label("sealed_id"), *_public).select_from(sa.outerjoin(AuditSeal, AuditEvent, its_event))
           .where(AuditSeal.organization_id == sa.bindparam("org"), AuditSeal.seq > sa.bindparam("after"),
                  AuditSeal.seq <= sa.bindparam("upto"))
           .order_by(AuditSeal.seq))
_EVENT_BY_ID = sa.select(*_event).where(AuditEvent.id == sa.bindparam("id"))  # every partition: only for a break
LATEST_ARCHIVE = (sa.select(AuditArchive.seq, AuditArchive.hash, AuditArchive.copies)
                   .where(AuditArchive.organization_id == sa.bindparam("org")).order_by(AuditArchive.id.desc()).limit(1))
_NO_END = 2**31 - 1  # seq is an integer column


async def _event_elsewhere(db: AsyncConnection, sealed: dict[str, Any]) -> dict[str, Any] | None:
    """The sealed event found by id alone (its ``at`` was changed), with its seal's place, or None if it is gone."""
    found = (await db.execute(_EVENT_BY_ID, {"id": sealed["sealed_id"]})).mappings().first()
    return None if found is None else {**found, "seq": sealed["seq"], "prev_hash": sealed["prev_hash"], "hash": sealed["hash"]}


async def sealed_rows(db: AsyncConnection, organization_id: str, after: int, upto: int = _NO_END,
                      batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """The organization's seals after seq ``after`` up to ``upto``, in seq order, each with its event (or none), page by page.

    Pages, not a server-side cursor: on asyncpg a cursor stays open until the transaction ends, and
    would keep ``ipt audit archive`` from dropping the partitions it has read.
    """
    while True:
        page = (await db.execute(SEALED.limit(batch), {"org": organization_id, "after": after, "upto": upto})).mappings().all()
        for row in page:
            yield dict(row)
        if len(page) < batch:
            return
        after = page[-1]["seq"]


async def _walk_live(db: AsyncConnection, organization_id: str, walk: chain.Walk) -> str | None:
    """Walk the organization's live chain after ``walk``'s start; the first problem, or None."""
    lost = None
    async for row in sealed_rows(db, organization_id, walk.seq):
        if row["id"] is None:
            lost = row
            break
        if problem := walk.step(row):
            return problem
    return None if lost is None else await lost_event_problem(db, walk, lost)


async def lost_event_problem(db: AsyncConnection, walk: chain.Walk, lost: dict[str, Any]) -> str:
    """Describe a seal met by the walk with no event at its (id, at): out of order, gone, or changed."""
    if problem := walk.out_of_order(lost | {"id": lost["sealed_id"]}):
        return problem
    event = await _event_elsewhere(db, lost)
    if event is None:
        return f"missing: expected seq {walk.seq + 1}, but its event {lost['sealed_id']} is gone"
    return walk.step(event) or f"altered: the seal of event {lost['sealed_id']} (seq {lost['seq']}) does not match its event"


async def copies_problem(db: AsyncConnection, organization_id: str, archived: sa.Row) -> str | None:
    """Check the live events at or below the archived head against the hashes the archive recorded for them."""
    recorded = dict(archived.copies)
    rows = (await db.execute(SEALED, {"org": organization_id, "after": -1, "upto": archived.seq})).mappings().all()
    for row in rows:
        event = dict(row) if row["id"] is not None else await _event_elsewhere(db, row)
        where = f"event {row['sealed_id']} (seq {row['seq']})"
        if event is None:
            return f"missing: {where}, kept live when its chain was archived up to seq {archived.seq}, is gone"
        expected = recorded.pop(str(row["seq"]), None)
        if expected is None:
            return f"reordered: {where} stands at or below the archived head (seq {archived.seq}) but the archive did not keep it"
        if expected != row["hash"] or chain.link(row["prev_hash"], event) != row["hash"]:
            return f"altered: {where} does not match its hash"
    if recorded:
        return f"missing: the event at seq {min(recorded, key=int)}, kept live when its chain was archived, is gone"
    return None


async def verify(db: AsyncConnection, organization_id: str | None = None) -> list[tuple[str, str]]:
    """Every chain's first break as (organization id, description); empty when all are intact.

    A chain whose first months were archived starts from the head ``ipt audit archive`` recorded.
    """
    orgs_query = sa.select(AuditChain.organization_id, AuditChain.seq, AuditChain.hash, AuditChain.position)
    if organization_id is not None:
        orgs_query = orgs_query.where(AuditChain.organization_id == organization_id)
    problems, horizon = [], await db.scalar(_HORIZON[db.dialect.name])
    for head in (await db.execute(orgs_query.order_by(AuditChain.organization_id))).mappings().all():
        org = head["organization_id"]
        archived = (await db.execute(LATEST_ARCHIVE, {"org": org})).first()
        walk = chain.Walk(archived.seq, archived.hash) if archived else chain.Walk()
        problem = (archived and await copies_problem(db, org, archived)) or await _walk_live(db, org, walk)
        problem = problem or walk.end(dict(head))
        if problem is None and head["position"] >= horizon:
            problem = f"stalled: the chain head {AHEAD}"
        if problem is None:
            problem = await _unplaced(db, org)
        if problem:
            problems.append((org or "(no organization)", problem))
    return problems
