"""Tamper evidence: sealed events form one hash chain per organization, `ipt audit verify` names the first
break, sealing never skips an event that commits late, and on PostgreSQL triggers refuse any change to
an event or its seal."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import repository as audit_repository
from app.audit.models import AuditEvent
from app.background import housekeeping_loop, seal_everything_committed
from app.core.config import Settings
from app.core.db import transaction
from app.core.ids import new_id, utcnow
from tests.conftest import PG_VIA_PGBOUNCER, VIA_PGBOUNCER
from tests.support.pgbouncer import app_environment
from tests.support.world import make_world


def _migration(name: str):
    """A revision's module, loaded from its file (its name is not importable)."""
    spec = importlib.util.spec_from_file_location(name, next((ROOT / "migrations" / "versions").glob(f"*{name}*.py")))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROOT = Path(__file__).resolve().parents[2]
SQLITE_TX = _migration("0010").SQLITE_TX  # the trigger that gives SQLite events their position
EVENTS = 5


def _start_cli(database_url: str, *args: str) -> subprocess.Popen:
    """The real CLI in its own process, on the test database."""
    env = {**os.environ, **app_environment(database_url), "IPT_ENV": "test"}
    command = [sys.executable, "-m", "app.cli", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start_verify(database_url: str, org: str) -> subprocess.Popen:
    return _start_cli(database_url, "audit", "verify", "--org", org)


def _verify_all(database_url: str, orgs: dict[str, str]) -> dict[str, tuple[int, str, str]]:
    """Run the CLI for each named organization at once: {name: (exit code, stdout, stderr)}."""
    running = {name: _start_verify(database_url, org) for name, org in orgs.items()}
    results = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        results[name] = (process.returncode, out, err)
    return results


async def _org_with_events(app, client, count: int = EVENTS) -> str:
    """A fresh organization with ``count`` audit events."""
    world = await make_world(app)
    for _ in range(count):
        assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
    return world.org_id


def _event(org: str) -> dict:
    return {"id": new_id(), "organization_id": org, "at": utcnow(), "actor_type": "user", "actor_id": None,
            "action": "read", "resource_type": "patient", "resource_id": None, "patient_id": None,
            "request_id": "r", "ip": "127.0.0.1", "user_agent": "t", "outcome": 200, "details": {}}


async def _chain(app, org: str) -> list[dict]:
    async with app.state.engine.connect() as db:
        query = sa.text("SELECT e.id, s.seq, s.hash, s.prev_hash FROM audit_event e "
                        "LEFT JOIN audit_seal s ON s.event_id = e.id WHERE e.organization_id = :o ORDER BY s.seq, e.id")
        return [dict(r) for r in (await db.execute(query, {"o": org})).mappings().all()]


async def _tamper(app, statements: list[tuple[str, dict]]) -> None:
    """Change events or seals behind the app's back; on PostgreSQL past the append-only trigger (superuser only)."""
    async with transaction(app.state.engine, write=True) as db:
        if db.dialect.name == "postgresql":
            await db.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for sql, params in statements:
            await db.execute(sa.text(sql), params)


@VIA_PGBOUNCER
async def test_verify_passes_when_intact_and_names_the_first_tampered_event(app, client, database_url):
    names = ("intact", "altered", "deleted_middle", "deleted_last", "swapped")
    orgs = {name: await _org_with_events(app, client) for name in names}
    assert await seal_everything_committed(app.state.engine) >= 0
    chains = {name: await _chain(app, org) for name, org in orgs.items()}
    for name, chain in chains.items():
        assert [e["seq"] for e in chain] == list(range(1, EVENTS + 1)), name
        assert chain[0]["prev_hash"] == "0" * 64 and all(e["hash"] for e in chain)

    update = "UPDATE audit_event SET {} WHERE id = :id"
    delete = "DELETE FROM audit_event WHERE id = :id"
    set_seq = "UPDATE audit_seal SET seq = :seq WHERE event_id = :id"
    c = chains
    await _tamper(app, [(update.format("action = 'update'"), {"id": c["altered"][1]["id"]}),
                        (update.format("ip = '10.9.8.7'"), {"id": c["altered"][3]["id"]})])
    await _tamper(app, [(delete, {"id": c["deleted_middle"][2]["id"]})])
    await _tamper(app, [(delete, {"id": c["deleted_last"][-1]["id"]})])
    b, d = c["swapped"][1], c["swapped"][2]
    await _tamper(app, [(set_seq, {"seq": 1000, "id": b["id"]}), (set_seq, {"seq": 2, "id": d["id"]}),
                        (set_seq, {"seq": 3, "id": b["id"]})])

    results = _verify_all(database_url, orgs)

    code, out, err = results["intact"]
    assert code == 0, err
    assert "intact" in out and orgs["intact"] in out

    for name in names[1:]:
        code, out, err = results[name]
        assert code == 1, (name, out, err)
        assert "intact" not in out, name
        assert orgs[name] in err, (name, err)
    err = results["altered"][2]
    assert "altered" in err and c["altered"][1]["id"] in err and "seq 2" in err
    assert c["altered"][3]["id"] not in err  # the first break, not a later one
    err = results["deleted_middle"][2]
    assert "missing" in err and "expected seq 3" in err
    err = results["deleted_last"][2]
    assert "missing" in err and f"seq {EVENTS}" in err
    err = results["swapped"][2]
    assert "reordered" in err and d["id"] in err


@pytest.mark.parametrize("column, value", [("ip", "10.9.8.7"), ("user_agent", "x"), ("actor_id", None),
                                           ("patient_id", "p"), ("outcome", 200), ("at", datetime(2020, 1, 1, tzinfo=UTC))])
async def test_a_change_to_any_hashed_column_breaks_the_chain(app, client, column, value):
    org = await _org_with_events(app, client, 3)
    await seal_everything_committed(app.state.engine)
    target = (await _chain(app, org))[1]
    if column == "outcome":
        value = 500
    await _tamper(app, [(f"UPDATE audit_event SET {column} = :v WHERE id = :id", {"v": value, "id": target["id"]})])
    async with transaction(app.state.engine, write=False) as db:
        problems = await audit_repository.verify(db, org)
    assert len(problems) == 1 and problems[0][0] == org
    assert problems[0][1].startswith("altered") and target["id"] in problems[0][1]


async def test_interleaved_organizations_sealed_in_batches_verify_intact(app, client, database_url):
    orgs = [await make_world(app) for _ in range(3)]
    for round_number in range(3):
        for world in orgs:
            for _ in range(2):
                assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
        if round_number == 1:
            # Small batches: each organization's chain continues from its head across several seals.
            for world in orgs:
                async with transaction(app.state.engine, write=True) as db:
                    assert await audit_repository.seal(db, world.org_id, batch=1) in (0, 1)
        await seal_everything_committed(app.state.engine)
    for world in orgs:
        chain = await _chain(app, world.org_id)
        assert [e["seq"] for e in chain] == list(range(1, 7))
        assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(chain))
        async with transaction(app.state.engine, write=False) as db:
            assert await audit_repository.verify(db, world.org_id) == []
    results = _verify_all(database_url, {orgs[1].org_id: orgs[1].org_id})
    for org, (code, out, err) in results.items():
        assert code == 0, err
        assert f"intact for organization {org}" in out


async def test_one_sealing_pass_drains_backlogs_larger_than_a_batch_in_every_organization(app, client):
    orgs = [await _org_with_events(app, client, count) for count in (7, 2)]
    await seal_everything_committed(app.state.engine, batch=3)  # 7 events: three batches in one pass, the last one short
    for org, count in zip(orgs, (7, 2), strict=True):
        chain = await _chain(app, org)
        assert [e["seq"] for e in chain] == list(range(1, count + 1))
        async with transaction(app.state.engine, write=False) as db:
            assert await audit_repository.verify(db, org) == []
    async with transaction(app.state.engine, write=False) as db:
        assert not set(orgs) & set(await audit_repository.organizations_with_unsealed(db))


@VIA_PGBOUNCER
async def test_cli_seal_chains_every_waiting_event_and_prints_how_many(app, client, database_url):
    orgs = [await _org_with_events(app, client, count) for count in (3, 2)]
    out, err = _start_cli(database_url, "audit", "seal").communicate(timeout=120)
    assert json.loads(out)["sealed"] >= 5, err  # the worlds' own set-up events are sealed too
    for org, count in zip(orgs, (3, 2), strict=True):
        assert [e["seq"] for e in await _chain(app, org)] == list(range(1, count + 1))
    async with transaction(app.state.engine, write=False) as db:
        assert not set(orgs) & set(await audit_repository.organizations_with_unsealed(db))
    out, _ = _start_cli(database_url, "audit", "seal").communicate(timeout=120)
    assert json.loads(out) == {"sealed": 0}


async def test_one_transaction_with_more_events_than_a_batch_is_chained_across_batches_in_id_order(app):
    """Events of one transaction share a position: the chain head's event id says where the last batch stopped."""
    org = str(uuid.uuid4())
    events = [_event(org) for _ in range(7)]
    await _write_in_one_transaction(app, events)
    async with app.state.engine.connect() as db:
        positions = (await db.execute(sa.text("SELECT DISTINCT tx FROM audit_event WHERE organization_id = :o"),
                                      {"o": org})).scalars().all()
    assert len(positions) == (1 if app.state.engine.dialect.name == "postgresql" else 7) and None not in positions
    await seal_everything_committed(app.state.engine, batch=3)
    await _assert_chained(app, org, events)
    async with transaction(app.state.engine, write=False) as db:
        assert org not in await audit_repository.organizations_with_unsealed(db)


# The append-only triggers exist on PostgreSQL only (SQLite relies on the hash chain alone),
# so these run once, on a PostgreSQL database of their own.
async def test_postgres_triggers_refuse_update_delete_and_truncate_of_events_and_seals(pg_app, pg_client):
    app, client = pg_app, pg_client
    org = await _org_with_events(app, client, 2)
    await seal_everything_committed(app.state.engine)
    before = await _chain(app, org)
    sealed = before[0]["id"]
    for sql in ("UPDATE audit_event SET action = 'read', ip = '1.2.3.4' WHERE id = :id",
                "DELETE FROM audit_event WHERE id = :id",
                "TRUNCATE audit_event",
                "UPDATE audit_seal SET seq = 7, hash = prev_hash WHERE event_id = :id",
                "DELETE FROM audit_seal WHERE event_id = :id",
                "TRUNCATE audit_seal"):
        async with app.state.engine.connect() as db:
            tx = await db.begin()
            try:  # rolled back whatever happens, so a broken trigger cannot cost the session its log
                with pytest.raises(DBAPIError, match="append-only"):
                    await db.execute(sa.text(sql), {"id": sealed})
            finally:
                await tx.rollback()
    assert await _chain(app, org) == before


async def _write_in_one_transaction(app, events: list[dict]) -> None:
    async with transaction(app.state.engine, write=True) as db:
        for row in events:
            await audit_repository.insert(db, row)


@asynccontextmanager
async def _writer_left_open(app, event: dict) -> AsyncIterator[AsyncConnection]:
    """A transaction that has written ``event`` and stays open until the block commits or rolls it back."""
    async with app.state.engine.connect() as slow:
        await slow.begin()
        await slow.execute(sa.insert(AuditEvent).values(event))  # it now holds a transaction id
        yield slow


async def _assert_chained(app, org: str, events: list[dict]) -> None:
    """The organization's chain is exactly ``events``, in that order from seq 1, and verifies intact."""
    chain = await _chain(app, org)
    assert [(e["id"], e["seq"]) for e in chain] == [(row["id"], seq) for seq, row in enumerate(events, start=1)]
    async with transaction(app.state.engine, write=False) as db:
        assert await audit_repository.verify(db, org) == []


async def _events_as_stored(app, org: str) -> list[dict]:
    async with app.state.engine.connect() as db:
        query = sa.text("SELECT * FROM audit_event WHERE organization_id = :o ORDER BY id")
        return [dict(r) for r in (await db.execute(query, {"o": org})).mappings().all()]


async def test_postgres_sealing_adds_seals_and_changes_no_event(pg_app):
    app = pg_app
    org = str(uuid.uuid4())
    first, second = _event(org), _event(org)
    await _write_in_one_transaction(app, [first, second])
    with pytest.raises(DBAPIError, match="append-only"):  # not even an event that is not sealed yet
        async with transaction(app.state.engine, write=True) as db:
            await db.execute(sa.text("UPDATE audit_event SET ip = '9.9.9.9' WHERE id = :id"), {"id": first["id"]})
    stored = await _events_as_stored(app, org)
    await seal_everything_committed(app.state.engine)  # the app's own loop may have sealed them first: either way
    assert await _events_as_stored(app, org) == stored
    await _assert_chained(app, org, [first, second])


@PG_VIA_PGBOUNCER
async def test_postgres_an_event_that_commits_late_is_chained_after_it_commits_never_skipped(pg_app):
    """A transaction that began writing first but commits last holds back sealing of later events until it ends."""
    app = pg_app
    org = str(uuid.uuid4())
    early, late = _event(org), _event(org)
    async with _writer_left_open(app, early) as slow:  # its transaction id is the older one
        async with transaction(app.state.engine, write=True) as db:
            await audit_repository.insert(db, late)
        async with transaction(app.state.engine, write=True) as db:
            assert await audit_repository.seal(db, org) == 0  # ``late`` waits: ``early`` may still commit
        assert [e["seq"] for e in await _chain(app, org)] == [None]
        await slow.commit()
    await seal_everything_committed(app.state.engine)
    await _assert_chained(app, org, [early, late])


@PG_VIA_PGBOUNCER
async def test_postgres_an_event_rolled_back_leaves_no_gap(pg_app):
    app = pg_app
    org = str(uuid.uuid4())
    lost, kept = _event(org), _event(org)
    async with _writer_left_open(app, lost) as slow:
        async with transaction(app.state.engine, write=True) as db:
            await audit_repository.insert(db, kept)
        await slow.rollback()
    await seal_everything_committed(app.state.engine)
    assert [(e["id"], e["seq"]) for e in await _chain(app, org)] == [(kept["id"], 1)]


@VIA_PGBOUNCER
async def test_the_housekeeping_loop_seals_new_events_within_its_interval(app, client):
    """Sealing runs every IPT_AUDIT_SEAL_INTERVAL_SECONDS (a second by default), pass after pass."""
    assert Settings.model_fields["audit_seal_interval_seconds"].default == 1.0
    task = asyncio.create_task(housekeeping_loop(app.state.engine, interval=0.05))
    try:
        for _ in range(3):  # each round's events arrive after the loop has already run passes
            org = await _org_with_events(app, client, count=2)
            deadline = asyncio.get_running_loop().time() + 5
            while len(chain := await _chain(app, org)) < 2 or any(e["seq"] is None for e in chain):
                assert asyncio.get_running_loop().time() < deadline, "events not sealed by the running loop"
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_chain_head_ahead_of_the_database_stalls_loudly_and_only_its_own_chain(app, client):
    """A database restored by pg_dump into a new cluster restarts transaction ids: new events would wait forever."""
    stalled, going = await _org_with_events(app, client, 2), await _org_with_events(app, client, 2)
    await seal_everything_committed(app.state.engine)
    async with transaction(app.state.engine, write=True) as db:  # as a restore leaves it: ahead of every id here
        await db.execute(sa.text("UPDATE audit_chain SET position = :p WHERE organization_id = :o"),
                         {"p": 2**62, "o": stalled})
    for org in (stalled, going):
        async with transaction(app.state.engine, write=True) as db:
            await audit_repository.insert(db, _event(org))
    logger, said = logging.getLogger("ipt.background"), []
    handler = logging.Handler(logging.ERROR)
    handler.emit = said.append  # on the logger itself: the CLI's logging set-up, if a test ran it, stops propagation
    logger.addHandler(handler)
    try:
        assert await seal_everything_committed(app.state.engine) == 1  # the other organization's event
        assert await seal_everything_committed(app.state.engine) == 0  # and said once, not every pass
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in said if stalled in r.getMessage()] == [
        f"the audit chain of organization {stalled} {audit_repository.AHEAD}"]
    assert [e["seq"] for e in await _chain(app, going)] == [1, 2, 3]
    assert sorted(e["seq"] or 0 for e in await _chain(app, stalled)) == [0, 1, 2]  # 0: not sealed
    with pytest.raises(audit_repository.ChainAheadOfDatabase):
        async with transaction(app.state.engine, write=True) as db:
            await audit_repository.seal(db, stalled)
    async with transaction(app.state.engine, write=False) as db:
        assert await audit_repository.verify(db, stalled) == [(stalled, f"stalled: the chain head {audit_repository.AHEAD}")]
        assert await audit_repository.verify(db, going) == []


async def test_verify_names_an_event_written_without_a_position_which_no_pass_could_chain(app, client):
    org = await _org_with_events(app, client, 2)
    await seal_everything_committed(app.state.engine)
    stray = _event(org)
    async with transaction(app.state.engine, write=True) as db:
        if db.dialect.name == "sqlite":  # the trigger fills tx after the insert: take it out of the way
            await db.execute(sa.text("DROP TRIGGER audit_event_tx"))
        await db.execute(sa.insert(AuditEvent).values(stray | {"tx": None}))
        if db.dialect.name == "sqlite":
            await db.execute(sa.text(SQLITE_TX))
    await seal_everything_committed(app.state.engine)
    async with transaction(app.state.engine, write=False) as db:
        assert await audit_repository.verify(db, org) == [(org, f"unsealable: 1 event(s) without a position, first {stray['id']}")]


@VIA_PGBOUNCER
async def test_sealers_running_at_once_chain_every_event_once(app):
    """Several processes may each run a sealer: the chain head's lock keeps one chain, with no event twice."""
    org = str(uuid.uuid4())
    events = [_event(org) for _ in range(12)]
    await _write_in_one_transaction(app, events)
    await asyncio.gather(*(seal_everything_committed(app.state.engine, batch=2) for _ in range(4)))
    await _assert_chained(app, org, events)


@PG_VIA_PGBOUNCER
async def test_postgres_sealing_everything_committed_waits_for_an_older_writer_within_its_limit(pg_app):
    app = pg_app
    async with _writer_left_open(app, _event(str(uuid.uuid4()))) as slow:
        assert await audit_repository.wait_for_older_writers(app.state.engine, 0.2) is False
        await slow.commit()
    assert await audit_repository.wait_for_older_writers(app.state.engine, 5) is True
