"""Fixtures: every database test runs on SQLite and on PostgreSQL, each built by the migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from tests.support.databases import REQUIRE_POSTGRES, migrate, postgres_available, postgres_database, sqlite_database
from tests.support.infra import require_binary
from tests.support.pgbouncer import app_settings, pgbouncer
from tests.support.world import World, make_world

_postgres_up: bool | None = None
# The tests that matter most under a pooler run a third time: on PostgreSQL through a real PgBouncer
# in transaction pooling mode, the app told so (IPT_DATABASE_POOLER, IPT_DATABASE_DIRECT_URL).
VIA_PGBOUNCER = pytest.mark.parametrize("database_url", ["sqlite", "postgres", "pgbouncer"], indirect=True)
PG_VIA_PGBOUNCER = pytest.mark.parametrize("postgres_url", ["postgres", "pgbouncer"], indirect=True)


def test_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for a test app: fast password hashing, sign-in failure budgets out of the way."""
    values = {
        "env": "test",
        "database_url": database_url,
        "password_hash_memory_kib": 1024,
        "password_hash_time_cost": 1,
        "login_failures_per_account": 100_000,
        "login_failures_per_address": 100_000,
        "rate_limit_per_minute": 0,
    }
    values.update(app_settings(database_url))  # through PgBouncer: the pooler and the direct URL
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # a helper, not a test, wherever it is imported


def require_postgres() -> None:
    """Skip (or, in CI, fail) when PostgreSQL does not answer."""
    global _postgres_up
    if _postgres_up is None:
        _postgres_up = postgres_available()
    if not _postgres_up:
        if REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL is required (IPT_TEST_REQUIRE_POSTGRES=1) but does not answer")
        pytest.skip("PostgreSQL is not reachable: the PostgreSQL half of the suite was skipped")


def pytest_report_header(config: pytest.Config) -> str:
    up = postgres_available()
    return f"PostgreSQL for tests: {'available' if up else 'NOT available - the PostgreSQL half will be skipped'}"


@contextmanager
def _postgres(route: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own, reached directly or (``pgbouncer``) through a PgBouncer started for it."""
    require_postgres()
    binary = require_binary("pgbouncer") if route == "pgbouncer" else None
    with postgres_database() as url:
        migrate(url)
        if binary is None:
            yield url
            return
        with pgbouncer(url, binary=binary) as through:
            yield through


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, throwaway database for the whole session, once per backend (and through PgBouncer: VIA_PGBOUNCER)."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            migrate(url)
            yield url
        return
    with _postgres(request.param) as url:
        yield url


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    """The app on the session database."""
    application = create_app(test_settings(database_url))
    yield application
    await application.state.engine.dispose()


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in process."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def world(app: FastAPI) -> World:
    """A fresh organization with one caller per role."""
    return await make_world(app)


@pytest.fixture
async def other_world(app: FastAPI) -> World:
    """A second, unrelated organization."""
    return await make_world(app)


@pytest.fixture(scope="session")
def live_url(app: FastAPI, database_url: str) -> Iterator[str]:
    """A real ``ipt serve`` process on the session database, sharing the app's signing key."""
    from tests.support.live import live_server

    with live_server(database_url, app.state.settings.secret_key) as base:
        yield base


@pytest.fixture(scope="session", params=["postgres"])
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL database of its own, for the multi-process tests (PostgreSQL only by design; PG_VIA_PGBOUNCER)."""
    with _postgres(request.param) as url:
        yield url


@pytest.fixture(scope="session")
async def pg_app(postgres_url: str) -> AsyncIterator[FastAPI]:
    """An app on the PostgreSQL-only database, for tests of PostgreSQL-only behaviour."""
    application = create_app(test_settings(postgres_url))
    yield application
    await application.state.engine.dispose()


@pytest.fixture(scope="session")
async def pg_client(pg_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``pg_app``."""
    transport = httpx.ASGITransport(app=pg_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
