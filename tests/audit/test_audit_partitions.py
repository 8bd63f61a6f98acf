"""PostgreSQL's audit log is partitioned by month: months made ahead, every partition append-only, the chain
verified across months, and the lookups the sealer and verify make kept to indexes and pruned partitions."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from app.audit import partitions
from app.audit import repository as audit_repository
from app.background import seal_everything_committed
from app.core.db import transaction
from app.core.ids import new_id


def event_at(org: str, at: datetime) -> dict:
    """An audit event of ``org`` dated ``at`` (as a request long ago or far ahead would have written it)."""
    return {"id": new_id(), "organization_id": org, "at": at, "actor_type": "user", "actor_id": None,
            "action": "read", "resource_type": "patient", "resource_id": None, "patient_id": None,
            "request_id": "r", "ip": "127.0.0.1", "user_agent": "t", "outcome": 200, "details": {}}


async def _write(engine, events: list[dict]) -> None:
    for event in events:  # one transaction each: chained in this order
        async with transaction(engine, write=True) as db:
            await audit_repository.insert(db, event)


async def _partition_of(engine, event_id: str) -> str:
    async with engine.connect() as db:
        return await db.scalar(sa.text("SELECT tableoid::regclass::text FROM audit_event WHERE id = :id"), {"id": event_id})


async def _chain(engine, org: str) -> list[dict]:
    async with engine.connect() as db:
        query = sa.text("SELECT s.event_id AS id, s.seq, s.at FROM audit_seal s WHERE s.organization_id = :o ORDER BY s.seq")
        return [dict(r) for r in (await db.execute(query, {"o": org})).mappings().all()]


async def test_postgres_months_ahead_are_made_once_even_by_several_makers_at_once(pg_app):
    engine = pg_app.state.engine
    far = datetime(2041, 11, 15, tzinfo=UTC)  # four months from here: 2041-11 .. 2042-02
    made = await asyncio.gather(*(partitions.keep_months_ahead(engine, far) for _ in range(3)))
    names = sorted(name for batch in made for name in batch)
    expected = sorted(partitions.name(t, m) for t in partitions.TABLES for m in [(2041, 11), (2041, 12), (2042, 1), (2042, 2)])
    assert names == expected  # each made by exactly one of the three
    assert await partitions.keep_months_ahead(engine, far) == []
    org = str(uuid.uuid4())
    new_year = event_at(org, datetime(2042, 1, 1, tzinfo=UTC))
    await _write(engine, [new_year])
    assert await _partition_of(engine, new_year["id"]) == "audit_partitions.audit_event_2042_01"
    await seal_everything_committed(engine)
    async with engine.connect() as db:
        seal_partition = await db.scalar(sa.text("SELECT tableoid::regclass::text FROM audit_seal WHERE event_id = :id"),
                                         {"id": new_year["id"]})
        assert seal_partition == "audit_partitions.audit_seal_2042_01"  # the seal lives in its event's month
        assert await audit_repository.verify(db, org) == []


async def test_postgres_every_partition_refuses_update_delete_and_truncate(pg_app):
    engine = pg_app.state.engine
    await partitions.keep_months_ahead(engine, datetime(2043, 3, 1, tzinfo=UTC))
    org = str(uuid.uuid4())
    event = event_at(org, datetime(2043, 3, 2, tzinfo=UTC))
    await _write(engine, [event])
    await seal_everything_committed(engine)
    for sql in ("UPDATE audit_partitions.audit_event_2043_03 SET ip = '1.2.3.4' WHERE id = :id",
                "DELETE FROM audit_partitions.audit_event_2043_03 WHERE id = :id",
                "TRUNCATE audit_partitions.audit_event_2043_03",
                "UPDATE audit_partitions.audit_seal_2043_03 SET seq = 9 WHERE event_id = :id",
                "DELETE FROM audit_partitions.audit_seal_2043_03 WHERE event_id = :id",
                "TRUNCATE audit_partitions.audit_seal_2043_03",
                "TRUNCATE audit_partitions.audit_event_default",
                "TRUNCATE audit_partitions.audit_seal_default"):
        async with engine.connect() as db:
            tx = await db.begin()
            try:
                with pytest.raises(DBAPIError, match="append-only"):
                    await db.execute(sa.text(sql), {"id": event["id"]})
            finally:
                await tx.rollback()
    assert [e["id"] for e in await _chain(engine, org)] == [event["id"]]


async def test_postgres_an_event_of_a_month_without_a_partition_lands_in_default_and_is_chained(pg_app):
    """A missing month never fails the request that writes the event: DEFAULT takes it."""
    engine = pg_app.state.engine
    org = str(uuid.uuid4())
    stray = event_at(org, datetime(2077, 7, 7, tzinfo=UTC))
    await _write(engine, [stray])
    assert await _partition_of(engine, stray["id"]) == "audit_partitions.audit_event_default"
    await seal_everything_committed(engine)
    async with engine.connect() as db:
        assert await audit_repository.verify(db, org) == []
    with pytest.raises(DBAPIError, match="default partition"):  # that month cannot be made now: see the README
        async with transaction(engine, write=True) as db:
            await partitions.ensure_months(db, [(2077, 7)])


async def _tamper(engine, statements: list[tuple[str, dict]]) -> None:
    """As a superuser, past the append-only triggers."""
    async with transaction(engine, write=True) as db:
        await db.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for sql, params in statements:
            await db.execute(sa.text(sql), params)


async def _org_across_a_month_boundary(engine) -> tuple[str, list[dict]]:
    """An organization whose chain runs 2044-05-31 23:59 .. 2044-06-01 00:01: two events in each month."""
    async with transaction(engine, write=True) as db:
        await partitions.ensure_months(db, [(2044, 5), (2044, 6)])
    org = str(uuid.uuid4())
    moments = [datetime(2044, 5, 31, 23, 59, s, tzinfo=UTC) for s in (1, 2)] + \
              [datetime(2044, 6, 1, 0, 0, s, tzinfo=UTC) for s in (1, 2)]
    events = [event_at(org, at) for at in moments]
    await _write(engine, events)
    await seal_everything_committed(engine)
    assert [e["id"] for e in await _chain(engine, org)] == [e["id"] for e in events]
    return org, events


async def test_postgres_verify_names_the_first_break_across_a_month_boundary(pg_app):
    engine = pg_app.state.engine
    altered_org, altered = await _org_across_a_month_boundary(engine)
    await _tamper(engine, [("UPDATE audit_event SET ip = '10.0.0.9' WHERE id = :id", {"id": altered[2]["id"]})])
    missing_org, missing = await _org_across_a_month_boundary(engine)  # the first event of June deleted
    await _tamper(engine, [("DELETE FROM audit_event WHERE id = :id", {"id": missing[2]["id"]})])
    swapped_org, swapped = await _org_across_a_month_boundary(engine)  # last of May and first of June swap places
    set_seq = "UPDATE audit_seal SET seq = :seq WHERE event_id = :id"
    await _tamper(engine, [(set_seq, {"seq": 1000, "id": swapped[1]["id"]}), (set_seq, {"seq": 2, "id": swapped[2]["id"]}),
                           (set_seq, {"seq": 3, "id": swapped[1]["id"]})])
    moved_org, moved = await _org_across_a_month_boundary(engine)  # redated into the other month (row moves partition)
    await _tamper(engine, [("UPDATE audit_event SET at = at + interval '1 minute' WHERE id = :id", {"id": moved[1]["id"]})])
    intact_org, _ = await _org_across_a_month_boundary(engine)
    async with engine.connect() as db:
        assert await audit_repository.verify(db, intact_org) == []
        assert await audit_repository.verify(db, altered_org) == [
            (altered_org, f"altered: event {altered[2]['id']} (seq 3) does not match its hash")]
        assert await audit_repository.verify(db, missing_org) == [
            (missing_org, f"missing: expected seq 3, but its event {missing[2]['id']} is gone")]
        [(_, problem)] = await audit_repository.verify(db, swapped_org)
        assert problem.startswith("reordered") and swapped[2]["id"] in problem
        assert await audit_repository.verify(db, moved_org) == [
            (moved_org, f"altered: event {moved[1]['id']} (seq 2) does not match its hash")]
    assert await _partition_of(engine, moved[1]["id"]) == "audit_partitions.audit_event_2044_06"


async def _plan(db, sql: str, params: dict) -> str:
    plan = await db.scalar(sa.text("EXPLAIN (FORMAT JSON) " + sql), params)
    return plan if isinstance(plan, str) else json.dumps(plan)


async def test_postgres_the_sealer_and_verify_use_indexes_and_a_seal_finds_its_event_in_one_partition(pg_app):
    engine = pg_app.state.engine
    async with transaction(engine, write=True) as db:
        await partitions.ensure_months(db, [(2045, m) for m in range(1, 13)])
    org = str(uuid.uuid4())
    await _write(engine, [event_at(org, datetime(2045, m, 3, tzinfo=UTC)) for m in range(1, 13)])
    await seal_everything_committed(engine)
    sealed = (await _chain(engine, org))[4]
    async with engine.connect() as db:
        await db.execute(sa.text("ANALYZE audit_event"))
        await db.execute(sa.text("ANALYZE audit_seal"))
        await db.execute(sa.text("SET enable_seqscan = off"))  # a tiny table: ask whether an index can serve at all
        by_id_and_at = await _plan(db, "SELECT * FROM audit_event WHERE id = :id AND at = :at",
                                         {"id": sealed["id"], "at": sealed["at"]})
        assert by_id_and_at.count('"Relation Name"') == 1 and "audit_event_2045_05" in by_id_and_at
        assert "Index" in by_id_and_at
        sealer = await _plan(db, "SELECT tx, id FROM audit_event WHERE organization_id = :o "
                                          "AND (tx, id) > (:p, :e) AND tx < :h ORDER BY tx, id LIMIT 2000",
                                   {"o": org, "p": 0, "e": "", "h": 2**40})
        assert "Seq Scan" not in sealer and "Sort" not in sealer.replace("Sort Key", "")  # index order, merged
        listing = await _plan(db, "SELECT id FROM audit_event WHERE organization_id = :o AND at >= :since "
                                           "AND at < :until ORDER BY id LIMIT 50",
                                    {"o": org, "since": datetime(2045, 3, 1, tzinfo=UTC), "until": datetime(2045, 5, 1, tzinfo=UTC)})
        assert listing.count('"Relation Name"') == 2  # since/until prune to March and April
