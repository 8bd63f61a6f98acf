"""Requests get pooled connections in the order they asked for them, and give up with a 503's error in time."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from app.core.db import make_engine, transaction
from tests.conftest import test_settings


async def test_connections_are_handed_out_first_come_first_served(database_url):
    engine = make_engine(test_settings(database_url, db_pool_size=1))
    order: list[int] = []
    release = asyncio.Event()

    returned = asyncio.Event()

    async def request(n: int, hold: bool = False) -> None:
        async with transaction(engine, write=False) as db:
            order.append(n)
            await db.execute(sa.text("SELECT 1"))
            if hold:
                await release.wait()
        if hold:
            returned.set()

    # A newcomer that asks the moment the first connection comes back (ahead of the request already
    # waiting, which has been told but not yet run) must not jump the queue: SQLAlchemy's pool let it.

    async def newcomer() -> None:
        await returned.wait()
        await request(6)

    try:
        holder = asyncio.create_task(request(0, hold=True))
        while not order:
            await asyncio.sleep(0.01)
        waiting = []
        for n in range(1, 6):  # each starts waiting before the next arrives
            waiting.append(asyncio.create_task(request(n)))
            await asyncio.sleep(0.01)
        late = asyncio.create_task(newcomer())
        release.set()
        await asyncio.gather(holder, *waiting, late)
        assert order == [0, 1, 2, 3, 4, 5, 6]
    finally:
        await engine.dispose()


async def test_a_request_that_waits_too_long_gets_the_pool_timeout(database_url):
    engine = make_engine(test_settings(database_url, db_pool_size=1, db_pool_timeout_seconds=0.2))
    release = asyncio.Event()

    async def hold() -> None:
        async with transaction(engine, write=False) as db:
            await db.execute(sa.text("SELECT 1"))
            await release.wait()

    try:
        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        with pytest.raises(sa.exc.TimeoutError):  # the handlers answer it 503 with Retry-After
            async with transaction(engine, write=False):
                pass
        release.set()
        await holder
    finally:
        await engine.dispose()


async def test_a_connection_handed_back_inside_a_transaction_is_never_reused(postgres_url):
    """A request cancelled mid-rollback can leave its transaction open on the connection it gives back."""
    engine = make_engine(test_settings(postgres_url, db_pool_size=1))
    try:
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.execute("BEGIN")  # open on the server, unknown to SQLAlchemy's adapter
        async with transaction(engine, write=True) as db:
            assert await db.scalar(sa.text("SELECT 1")) == 1
    finally:
        await engine.dispose()
