"""Writes queued with Statement.later: seen by everything after them, all or nothing with the transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core.db import transaction
from app.core.fastsql import Statement
from app.core.ids import new_id
from app.webhooks import outbox
from app.webhooks.models import OutboxEvent
from tests.support.clinic import outbox_event
from tests.support.world import make_world

_count = Statement(sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.organization_id == sa.bindparam("org")))


async def test_queued_writes_are_seen_by_the_next_statement_of_either_kind(app):
    world = await make_world(app)
    async with transaction(app.state.engine, write=True) as db:
        for _ in range(3):
            await outbox._insert.later(db, outbox_event(world.org_id))
        assert (await _count.first(db, {"org": world.org_id}))["count_1"] == 3  # a compiled statement
        await outbox._insert.later(db, outbox_event(world.org_id))
        query = sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.organization_id == world.org_id)
        assert await db.scalar(query) == 4  # a statement SQLAlchemy runs
        await outbox._insert.later(db, outbox_event(world.org_id))
    async with transaction(app.state.engine, write=False) as db:  # and the last one went with the commit
        assert await db.scalar(query) == 5


async def test_a_queued_write_that_fails_at_commit_leaves_nothing_of_the_transaction(app):
    world = await make_world(app)
    taken = new_id()
    with pytest.raises(sa.exc.IntegrityError):
        async with transaction(app.state.engine, write=True) as db:
            await outbox._insert.later(db, outbox_event(world.org_id))
            await outbox._insert.later(db, outbox_event(world.org_id, taken))
            await outbox._insert.later(db, outbox_event(world.org_id, taken))  # the same primary key twice
    async with transaction(app.state.engine, write=False) as db:
        assert (await _count.first(db, {"org": world.org_id}))["count_1"] == 0


async def test_writes_queued_in_a_rolled_back_transaction_are_never_sent(app):
    world = await make_world(app)
    with pytest.raises(RuntimeError):
        async with transaction(app.state.engine, write=True) as db:
            await outbox._insert.later(db, outbox_event(world.org_id))
            raise RuntimeError("the handler failed")
    async with transaction(app.state.engine, write=True) as db:  # the same pooled connection, most likely
        await outbox._insert.later(db, outbox_event(world.org_id))
    async with transaction(app.state.engine, write=False) as db:
        assert (await _count.first(db, {"org": world.org_id}))["count_1"] == 1


async def test_a_queued_write_that_fails_before_a_sqlalchemy_statement_is_that_statements_error(app):
    world = await make_world(app)
    taken = new_id()
    query = sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.organization_id == world.org_id)
    with pytest.raises(sa.exc.IntegrityError):
        async with transaction(app.state.engine, write=True) as db:
            await outbox._insert.later(db, outbox_event(world.org_id, taken))
            await outbox._insert.later(db, outbox_event(world.org_id, taken))
            await db.scalar(query)  # the queue goes first, and fails, as SQLAlchemy's own error
    async with transaction(app.state.engine, write=False) as db:
        assert await db.scalar(query) == 0
