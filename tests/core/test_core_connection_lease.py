"""Connections stay checked out between requests that end cleanly; anything else goes back to the pool."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from app.core.db import lease_of, make_engine, transaction
from app.core.driver import asyncpg_adapter
from app.main import create_app
from tests.conftest import test_settings


async def _backend(engine) -> int:
    """The server process behind the connection a transaction gets (on SQLite, the driver connection's id)."""
    async with transaction(engine, write=False) as db:
        if engine.dialect.name == "postgresql":
            return await db.scalar(sa.text("SELECT pg_backend_pid()"))
        return id((await db.get_raw_connection()).driver_connection)


async def test_a_connection_that_ended_its_transaction_cleanly_serves_the_next_one(database_url):
    engine = make_engine(test_settings(database_url, db_pool_size=2))
    try:
        first = await _backend(engine)
        assert len(lease_of(engine).idle) == 1
        assert await _backend(engine) == first
        checkouts = []
        sa.event.listen(engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
        for _ in range(3):
            async with transaction(engine, write=True) as db:
                await db.execute(sa.text("SELECT 1"))
        assert checkouts == [], "a held connection went back through the pool"
    finally:
        await engine.dispose()


async def test_a_transaction_that_failed_gives_its_connection_back_to_the_pool(database_url):
    engine = make_engine(test_settings(database_url, db_pool_size=1))
    try:
        await _backend(engine)
        with pytest.raises(ZeroDivisionError):
            async with transaction(engine, write=True) as db:
                await db.execute(sa.text("SELECT 1"))
                1 / 0  # noqa: B018 - any error in the request's work
        assert lease_of(engine).idle == []
        assert await _backend(engine)  # the pool hands a connection out again: nothing leaked
    finally:
        await engine.dispose()


async def test_a_connection_left_inside_a_transaction_on_the_server_is_not_kept(postgres_url):
    engine = make_engine(test_settings(postgres_url, db_pool_size=1))
    try:
        async with transaction(engine, write=False) as db:
            await asyncpg_adapter(db)._connection.execute("BEGIN")  # unknown to SQLAlchemy and to us
        assert lease_of(engine).idle == []
        async with transaction(engine, write=False) as db:
            assert not asyncpg_adapter(db)._connection.is_in_transaction()
    finally:
        await engine.dispose()


async def test_a_held_connection_the_server_dropped_while_idle_is_replaced_unseen(postgres_url):
    engine = make_engine(test_settings(postgres_url, db_pool_size=1))
    try:
        dropped = await _backend(engine)
        admin = await asyncpg.connect(postgres_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", dropped)
        finally:
            await admin.close()
        conn, _ = lease_of(engine).idle[-1]
        lease_of(engine).idle[-1] = (conn, 0.0)  # idle since boot: longer than PING_AFTER_IDLE_SECONDS
        replacement = await _backend(engine)  # no error: checked before use, and replaced
        assert replacement != dropped
    finally:
        await engine.dispose()


async def test_disposing_the_engine_closes_the_connections_it_held(postgres_url):
    engine = make_engine(test_settings(postgres_url, db_pool_size=2))
    held = await _backend(engine)
    await engine.dispose()
    assert lease_of(engine).idle == []
    admin = await asyncpg.connect(postgres_url)
    try:
        for _ in range(50):  # the server notices the closed socket a moment later
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", held):
                break
            await asyncio.sleep(0.02)
        assert not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", held)
    finally:
        await admin.close()


async def test_readyz_answers_while_the_engine_holds_every_connection(database_url):
    """/readyz takes a turn like a request: asking the pool directly would wait for a connection the lease holds."""
    application = create_app(test_settings(database_url, db_pool_size=1))
    try:
        await _backend(application.state.engine)
        assert len(lease_of(application.state.engine).idle) == 1  # the pool's only connection, held
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http:
            response = await http.get("/readyz")
        assert response.status_code == 200, response.text
    finally:
        await application.state.engine.dispose()
