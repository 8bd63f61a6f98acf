"""Through PgBouncer in transaction pooling mode: statements that never outlive their transaction, and a
pooler the settings do not name is refused at once, instead of working alone and failing under load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.core.config import ConfigError, Settings
from app.core.db import POOLER, make_engine, transaction
from app.core.fastsql import Statement
from tests.conftest import test_settings
from tests.support.infra import require_binary
from tests.support.pgbouncer import pgbouncer

ROOT = Path(__file__).resolve().parents[2]
# Distinct statements with as many parameters each: on a shared server connection a statement left
# behind by another client would run with these arguments, and answer for the wrong one.
STATEMENTS = [Statement(sa.select((sa.bindparam("n", type_=sa.Integer) * factor).label("v"))) for factor in (2, 3, 5)]


@pytest.fixture(scope="module")
def crowded(postgres_url: str) -> Iterator[str]:
    """A PgBouncer with two server connections for everyone: clients take turns on them all the time."""
    with pgbouncer(postgres_url, pool_size=2, binary=require_binary("pgbouncer")) as url:
        yield url


async def _many_at_once(settings: Settings, in_transaction: bool) -> list[tuple[int, int, int]]:
    """(factor, n, answer) of 20 clients x 30 statements, alone or inside transactions, all at once."""
    engine = make_engine(settings)

    async def client(c: int) -> list[tuple[int, int, int]]:
        answers = []
        for i in range(30):
            index, n = (c + i) % len(STATEMENTS), c * 100 + i
            async with transaction(engine, write=in_transaction) as db:
                if in_transaction:
                    await db.execute(sa.text("SELECT pg_current_xact_id()"))  # begins the transaction
                row = await STATEMENTS[index].first(db, {"n": n})
            answers.append(((2, 3, 5)[index], n, row["v"]))
        return answers

    try:
        return [answer for part in await asyncio.gather(*(client(c) for c in range(20))) for answer in part]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("in_transaction", [False, True], ids=["statements alone", "inside transactions"])
async def test_through_pgbouncer_every_statement_answers_for_itself_under_contention(crowded, in_transaction):
    settings = test_settings(crowded, db_pool_size=20)
    assert settings.database_pooler == "pgbouncer"
    answers = await _many_at_once(settings, in_transaction)
    assert len(answers) == 600
    assert [answer for answer in answers if answer[0] * answer[1] != answer[2]] == []


async def test_an_engine_not_told_of_pgbouncer_refuses_to_use_it(crowded):
    engine = make_engine(Settings(env="test", database_url=crowded))  # the pooler not named
    try:
        with pytest.raises(ConfigError, match="IPT_DATABASE_POOLER=pgbouncer"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


def test_ipt_serve_pointed_at_pgbouncer_without_the_setting_exits_naming_it(crowded):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
    env.update(IPT_ENV="test", IPT_DATABASE_URL=crowded, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert POOLER in result.stderr


def test_migrations_take_the_direct_url(postgres_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
    env.update(IPT_ENV="test", PYTHONPATH=str(ROOT), IPT_DATABASE_POOLER="pgbouncer",
               IPT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere",  # no pooler answers there
               IPT_DATABASE_DIRECT_URL=postgres_url)
    result = subprocess.run([sys.executable, "-m", "app.cli", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_settings_name_a_pooler_only_with_a_direct_url_and_only_on_postgresql():
    with pytest.raises(ConfigError, match="IPT_DATABASE_DIRECT_URL"):
        Settings(env="test", database_url="postgresql://u@pooler:6432/db", database_pooler="pgbouncer")
    with pytest.raises(ConfigError, match="SQLite"):
        Settings(env="test", database_url="sqlite:///x.db", database_pooler="pgbouncer",
                 database_direct_url="sqlite:///x.db")
    settings = Settings(env="test", database_url="postgresql://u@pooler:6432/db", database_pooler="pgbouncer",
                        database_direct_url="postgresql://u@db:5432/db")
    assert settings.libpq_url == "postgresql://u@db:5432/db"  # LISTEN
    assert settings.sync_database_url == "postgresql+psycopg://u@db:5432/db"  # migrations
    assert settings.async_database_url == "postgresql+asyncpg://u@pooler:6432/db"  # the request pool
    assert Settings(env="test", database_url="postgresql://u@db/db").libpq_url == "postgresql://u@db/db"
