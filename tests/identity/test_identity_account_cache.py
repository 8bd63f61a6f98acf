"""Cached accounts: a change made anywhere (the API, another process, an operator's SQL) bites at once.

These apps run their lifespan, as `ipt serve` does, so on PostgreSQL the LISTEN connection is up and
the cache is live; the suite's other in-process apps never start it and read the account per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row

from app.identity.accounts import AccountCache, key
from app.main import create_app
from tests.conftest import PG_VIA_PGBOUNCER, VIA_PGBOUNCER, test_settings
from tests.support.pgbouncer import admin_url, app_settings
from tests.support.world import make_world

LIVE_WITHIN_SECONDS = 10.0


async def _until(condition, seconds: float = LIVE_WITHIN_SECONDS) -> float:
    """Wait until condition() holds; the seconds it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def _serving(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its lifespan running (the LISTEN task on PostgreSQL), and a client of it."""
    app = create_app(test_settings(database_url, background_tasks=False))
    async with app.router.lifespan_context(app):
        if not database_url.startswith("sqlite"):
            await _until(lambda: app.state.accounts.live)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A served app on each backend's session database."""
    async with _serving(database_url) as pair:
        yield pair


def _sql(database_url: str, statement: str, *params: object) -> None:
    """Change a row as an operator would, outside the API."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement.replace("%s", "?").replace("now()", "CURRENT_TIMESTAMP"), params)
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statement, params)


@VIA_PGBOUNCER
@pytest.mark.parametrize("who, path, change", [
    ("clinician", "/v1/me", "UPDATE app_user SET active = false WHERE id = %s"),
    ("ehr", "/v1/patients", "UPDATE integration SET deleted_at = now() WHERE id = %s"),
], ids=["user deactivated", "integration revoked"])
async def test_an_operators_sql_change_bites_without_a_restart(served, database_url, who, path, change):
    app, client = served
    world = await make_world(app)
    caller = getattr(world, who)
    assert (await client.get(path, headers=caller.headers)).status_code == 200  # now cached on PostgreSQL

    _sql(database_url, change, caller.id)

    started = time.monotonic()
    while (await client.get(path, headers=caller.headers)).status_code != 401:
        assert time.monotonic() - started < 2.0, f"{who} still had access 2 s after the change"
        await asyncio.sleep(0.01)


@VIA_PGBOUNCER
async def test_a_role_removed_through_the_api_bites_at_the_next_request(served):
    app, client = served
    world = await make_world(app)
    assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
    current = await client.get(f"/v1/users/{world.clinician.id}", headers=world.admin.headers)
    headers = {**world.admin.headers, "If-Match": current.headers["etag"]}
    changed = await client.patch(f"/v1/users/{world.clinician.id}", json={"roles": ["researcher"]}, headers=headers)
    assert changed.status_code == 200

    assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 403


@PG_VIA_PGBOUNCER
async def test_without_its_listen_connection_the_cache_is_not_trusted(postgres_url):
    async with _serving(postgres_url) as (app, client):
        await _listener_lost_then_back(app, client, postgres_url)


async def _listener_lost_then_back(app: FastAPI, client: httpx.AsyncClient, database_url: str) -> None:
    world = await make_world(app)
    assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 200

    # The listener's backend dies (a failover, an idle timeout, an operator): nothing may be served from memory.
    _sql(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()")
    await _until(lambda: not app.state.accounts.live)
    _sql(database_url, "UPDATE app_user SET active = false WHERE id = %s", world.clinician.id)
    assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 401

    await _until(lambda: app.state.accounts.live)  # and it comes back by itself


@VIA_PGBOUNCER
async def test_accounts_are_cached_only_where_changes_are_announced(served, database_url):
    app, client = served
    world = await make_world(app)
    await client.get("/v1/me", headers=world.clinician.headers)
    on_postgres = not database_url.startswith("sqlite")  # SQLite has no NOTIFY: every request reads the account
    assert app.state.accounts.live is on_postgres
    assert (app.state.accounts.get(key("user", world.clinician.id)) is not None) is on_postgres


def test_a_row_read_before_an_eviction_is_not_kept():
    cache = AccountCache()
    cache.live = True
    generation = cache.generation  # a request starts reading the account ...
    cache.evict(key("user", "u1"))  # ... the account changes meanwhile ...
    cache.put(key("user", "u1"), {"active": True}, generation)  # ... so what it read is stale
    assert cache.get(key("user", "u1")) is None

    cache.put(key("user", "u1"), {"active": False}, cache.generation)
    assert cache.get(key("user", "u1")) == {"active": False}


def test_nothing_is_served_or_kept_while_not_live():
    cache = AccountCache()
    cache.put(key("user", "u1"), {"active": True}, cache.generation)
    cache.live = True
    assert cache.get(key("user", "u1")) is None


def test_entries_expire_and_memory_is_bounded():
    cache = AccountCache(ttl_seconds=0.05, max_entries=3)
    cache.live = True
    for n in range(5):
        cache.put(key("user", f"u{n}"), {"n": n}, cache.generation)
    assert len(cache._entries) <= 3
    assert cache.get(key("user", "u4")) == {"n": 4}
    time.sleep(0.06)
    assert cache.get(key("user", "u4")) is None


def _listening(direct_url: str) -> set[int]:
    """The server processes of this database's LISTEN connections."""
    with psycopg.connect(direct_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()").fetchall()
    return {pid for (pid,) in rows}


@pytest.mark.parametrize("postgres_url", ["pgbouncer"], indirect=True)
async def test_through_pgbouncer_listen_goes_to_the_server_itself_and_changes_still_evict(postgres_url):
    direct = app_settings(postgres_url)["database_direct_url"]
    async with _serving(postgres_url) as (app, client):
        world = await make_world(app)
        assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 200  # served through PgBouncer
        with psycopg.connect(admin_url(postgres_url), autocommit=True, row_factory=dict_row) as admin:
            pooled = {row["remote_pid"] for row in admin.execute("SHOW SERVERS").fetchall()}
        listening = _listening(direct)
        assert pooled and listening and not listening & pooled, (listening, pooled)
        assert app.state.accounts.get(key("user", world.clinician.id)) is not None  # cached: the listener is live

        _sql(direct, "UPDATE app_user SET active = false WHERE id = %s", world.clinician.id)
        await _until(lambda: app.state.accounts.get(key("user", world.clinician.id)) is None, 2.0)
        assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 401


@pytest.mark.parametrize("postgres_url", ["pgbouncer"], indirect=True)
async def test_a_listen_url_that_leads_to_pgbouncer_is_never_trusted(postgres_url, caplog):
    """LISTEN through a transaction pooler would hear nothing: the cache stays off, and changes bite at once."""
    app = create_app(test_settings(postgres_url, background_tasks=False, database_direct_url=postgres_url))
    async with app.router.lifespan_context(app):
        await _until(lambda: "goes through a connection pooler" in caplog.text)
        world = await make_world(app)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 200
            assert not app.state.accounts.live and app.state.accounts.get(key("user", world.clinician.id)) is None
            _sql(postgres_url, "UPDATE app_user SET active = false WHERE id = %s", world.clinician.id)
            assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 401
