"""Migrations: one head, up and down cleanly on both databases, and they build exactly the models' schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import app.models  # noqa: F401  (registers every table on the metadata)
from app.audit import chain
from app.audit import repository as audit_repository
from app.background import seal_everything_committed
from app.core.config import Settings, _with_driver
from app.core.db import make_engine, metadata, transaction
from tests.conftest import require_postgres
from tests.support.databases import alembic_config, postgres_database, throwaway_database

VERSION_TABLE = "alembic_version"
PREFIXES = {"p": "pk", "f": "fk", "u": "uq", "c": "ck"}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A brand-new, empty database of each kind for every test."""
    if request.param == "postgres":
        require_postgres()
    with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(fresh_url: str) -> Iterator[sa.Engine]:
    """A sync engine on the fresh database, for looking at what the migrations built."""
    eng = sa.create_engine(_with_driver(fresh_url, "sqlite", "postgresql+psycopg"), poolclass=sa.NullPool)
    yield eng
    eng.dispose()


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _model_tables() -> set[str]:
    return set(metadata.tables)


def _current(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_there_is_exactly_one_head_and_history_is_linear():
    script = _script()
    assert len(script.get_heads()) == 1, f"several heads {script.get_heads()}: merge them (alembic merge heads)"
    assert len(script.get_bases()) == 1
    for revision in script.walk_revisions():
        assert not revision.is_merge_point or revision.is_head, revision.revision
        assert not isinstance(revision.down_revision, tuple | list), f"{revision.revision} merges branches"


def test_upgrade_from_empty_to_head_builds_every_model_table(fresh_url, engine):
    assert _tables(engine) == set()
    command.upgrade(alembic_config(fresh_url), "head")
    assert _tables(engine) == _model_tables() | {VERSION_TABLE}
    assert _current(engine) == _script().get_current_head()


def test_downgrade_to_base_leaves_no_tables_and_upgrade_works_again(fresh_url, engine):
    config = alembic_config(fresh_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert _tables(engine) - {VERSION_TABLE} == set()
    assert _current(engine) is None
    command.upgrade(config, "head")
    assert _tables(engine) == _model_tables() | {VERSION_TABLE}


def test_stairway_every_revision_goes_up_down_and_up_again(fresh_url, engine):
    config = alembic_config(fresh_url)
    revisions = list(reversed(list(_script().walk_revisions())))
    assert revisions, "no migrations found"
    for revision in revisions:
        command.upgrade(config, revision.revision)
        after_up = _tables(engine)
        command.downgrade(config, revision.down_revision or "base")
        assert _current(engine) == revision.down_revision
        command.upgrade(config, revision.revision)
        assert _tables(engine) == after_up, revision.revision
        assert _current(engine) == revision.revision


def test_migrated_schema_matches_the_models(fresh_url, engine):
    command.upgrade(alembic_config(fresh_url), "head")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == [], (
        "the models and the migrations disagree; write a revision (alembic revision --autogenerate): "
        f"{differences}"
    )


def test_postgres_constraints_and_indexes_follow_the_naming_convention():
    # PostgreSQL only: it reports every constraint's name, SQLite does not.
    require_postgres()
    with postgres_database() as url:
        command.upgrade(alembic_config(url), "head")
        engine = sa.create_engine(_with_driver(url, "sqlite", "postgresql+psycopg"), poolclass=sa.NullPool)
        try:
            constraints, indexes = _pg_names(engine)
        finally:
            engine.dispose()
    assert constraints and indexes
    wrong = []
    for name, kind, table in constraints:
        prefix = PREFIXES.get(kind)
        expected = f"pk_{table}" if kind == "p" else f"{prefix}_{table}_"
        if prefix is None or not (name == expected if kind == "p" else name.startswith(expected)):
            wrong.append((table, kind, name))
    constraint_names = {name for name, _, _ in constraints}
    for name, table, unique in indexes:
        allowed = (f"ix_{table}_", f"uq_{table}_") if unique else (f"ix_{table}_",)
        if name not in constraint_names and not name.startswith(allowed):
            wrong.append((table, "index", name))
    assert wrong == [], f"names outside the convention (pk_/fk_/uq_/ix_/ck_ + table): {wrong}"


def _pg_names(engine: sa.Engine) -> tuple[list, list]:
    """(name, kind, table) of every constraint and (name, table, unique) of every index in the schema."""
    with engine.connect() as conn:
        constraints = conn.execute(
            sa.text(
                """SELECT con.conname, con.contype, rel.relname
                FROM pg_constraint con
                JOIN pg_class rel ON rel.oid = con.conrelid
                JOIN pg_namespace ns ON ns.oid = rel.relnamespace
                WHERE ns.nspname = current_schema() AND rel.relname <> :version"""
            ),
            {"version": VERSION_TABLE},
        ).all()
        indexes = conn.execute(
            sa.text(
                """SELECT idx.relname, tbl.relname, ix.indisunique
                FROM pg_index ix
                JOIN pg_class idx ON idx.oid = ix.indexrelid
                JOIN pg_class tbl ON tbl.oid = ix.indrelid
                JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
                WHERE ns.nspname = current_schema() AND tbl.relname <> :version"""
            ),
            {"version": VERSION_TABLE},
        ).all()
    return constraints, indexes


def _old_event(org: str, n: int) -> dict:
    return {"id": f"0193a000-0000-7000-8000-00000000000{n}", "organization_id": org,
            "at": datetime(2026, 11, 1, 9, n, tzinfo=UTC), "actor_type": "user", "actor_id": "u", "action": "read",
            "resource_type": "patient", "resource_id": None, "patient_id": "p", "request_id": f"r{n}",
            "ip": "127.0.0.1", "user_agent": "t", "outcome": 200, "details": {"n": n}}


async def _seal_and_verify(url: str) -> tuple[int, list, list]:
    """Seal with the app's sealer, then (sealed count, verify's problems, (event id, seq) in chain order)."""
    engine = make_engine(Settings(database_url=url, env="test"))
    try:
        sealed = await seal_everything_committed(engine)
        async with transaction(engine, write=False) as db:
            problems = await audit_repository.verify(db)
            chain = (await db.execute(sa.text("SELECT event_id, seq FROM audit_seal ORDER BY seq"))).all()
        return sealed, problems, [tuple(row) for row in chain]
    finally:
        await engine.dispose()


def test_audit_chains_carry_over_when_seals_move_to_their_own_table(fresh_url, engine):
    """Revision 0010: events sealed in place keep their place; those still waiting are chained after them."""
    config = alembic_config(fresh_url)
    command.upgrade(config, "0009")
    org = "0193a000-0000-7000-8000-0000000000aa"
    events = [_old_event(org, n) for n in range(1, 5)]
    table = sa.table("audit_event", *(sa.column(name) for name in events[0] if name not in ("at", "details")),
                     sa.column("at", sa.DateTime(timezone=True)), sa.column("details", sa.JSON))
    prev_hash = chain.GENESIS
    with engine.begin() as conn:
        conn.execute(sa.insert(table), events)
        for seq, event in enumerate(events[:2], start=1):  # the first two sealed as revision 0009 sealed
            digest = chain.link(prev_hash, event | {"seq": seq})
            conn.execute(sa.text("UPDATE audit_event SET seq = :s, prev_hash = :p, hash = :h WHERE id = :id"),
                         {"s": seq, "p": prev_hash, "h": digest, "id": event["id"]})
            prev_hash = digest
        conn.execute(sa.text("INSERT INTO audit_chain (organization_id, seq, hash) VALUES (:o, 2, :h)"),
                     {"o": org, "h": prev_hash})

    command.upgrade(config, "head")
    sealed, problems, order = asyncio.run(_seal_and_verify(fresh_url))
    assert (sealed, problems) == (2, [])
    assert order == [(event["id"], seq) for seq, event in enumerate(events, start=1)]

    command.downgrade(config, "0009")  # and back: the seals return to the events
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, seq FROM audit_event ORDER BY seq")).all()
    assert [tuple(row) for row in rows] == order
    command.upgrade(config, "head")
    assert asyncio.run(_seal_and_verify(fresh_url)) == (0, [], order)
