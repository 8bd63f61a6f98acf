"""On PostgreSQL a transaction is begun only where it matters: a read request sends no BEGIN or COMMIT,
a locking read or a write begins one, and anything after a write stays inside it."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa

from app.core.db import transaction
from app.core.fastsql import Statement
from app.courses import repository as courses
from app.deps import Principal
from app.webhooks import outbox
from app.webhooks.models import OutboxEvent
from tests.support.clinic import open_course, outbox_event
from tests.support.statements import recording
from tests.support.world import make_world

_outbox_count = Statement(
    sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.organization_id == sa.bindparam("org"))
)


def _kinds(sent: list[str]) -> list[str]:
    """The first words of each statement, leaving out the caller's account check (the in-process app
    has no account cache: its lifespan, which starts the cache's listener, does not run here)."""
    return [" ".join(sql.split()[:3]).upper().rstrip(";") for sql in sent if "FROM app_user" not in sql]


async def test_a_read_request_is_its_read_and_its_audit_row_with_no_begin_or_commit(pg_app, pg_client):
    world = await make_world(pg_app)
    course = await open_course(pg_client, world.clinician)
    url = f"/v1/courses/{course['id']}"
    assert (await pg_client.get(url, headers=world.clinician.headers)).status_code == 200  # the account is cached now
    async with recording(pg_app) as sent:
        response = await pg_client.get(url, headers=world.clinician.headers)
    assert response.status_code == 200
    kinds = _kinds(sent)
    assert len(kinds) == 2 and kinds[0].startswith("SELECT COURSE") and kinds[1] == "INSERT INTO AUDIT_EVENT", kinds
    audit = await pg_client.get(f"/v1/audit-events?patient_id={course['patient_id']}&limit=200",
                                headers=world.admin.headers)
    reads = [e for e in audit.json()["data"] if e["action"] == "read" and e["resource_id"] == course["id"]]
    assert len(reads) == 2  # both reads were audited, each in its own statement


async def test_a_write_request_runs_in_one_transaction_from_its_locking_read_to_commit(pg_app, pg_client):
    world = await make_world(pg_app)
    course = await open_course(pg_client, world.clinician)
    body = {"held_on": course["started_on"], "attendance": "attended"}
    async with recording(pg_app) as sent:
        response = await pg_client.post(f"/v1/courses/{course['id']}/sessions", json=body, headers=world.clinician.headers)
    assert response.status_code == 201, response.text
    kinds = _kinds(sent)
    assert kinds[0] == "BEGIN" and kinds.count("BEGIN") == 1, kinds
    assert "FOR UPDATE" in [sql for sql in sent if "FROM app_user" not in sql][1].upper(), sent
    assert kinds[-1] == "COMMIT", kinds


async def test_a_locking_read_holds_its_row_until_the_transaction_ends(pg_app, pg_client, postgres_url):
    world = await make_world(pg_app)
    course_id = (await open_course(pg_client, world.clinician))["id"]
    supervisor = Principal("user", world.supervisor.id, world.org_id, frozenset(), ("supervisor",))
    lock = "SELECT 1 FROM course WHERE id = $1 FOR UPDATE NOWAIT"
    other = await asyncpg.connect(postgres_url)
    try:
        async with transaction(pg_app.state.engine, write=True) as db:
            await courses.get(db, supervisor, course_id, lock=True)
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.execute(lock, course_id)
        await other.execute(lock, course_id)  # released at commit
    finally:
        await other.close()


async def test_a_read_after_a_queued_write_is_inside_the_transaction_that_rolls_both_back(pg_app):
    world = await make_world(pg_app)
    with pytest.raises(RuntimeError):
        async with transaction(pg_app.state.engine, write=True) as db:
            await outbox._insert.later(db, outbox_event(world.org_id))
            assert (await _outbox_count.first(db, {"org": world.org_id}))["count_1"] == 1  # sent, not committed
            raise RuntimeError("the handler failed after reading")
    async with transaction(pg_app.state.engine, write=False) as db:
        assert (await _outbox_count.first(db, {"org": world.org_id}))["count_1"] == 0
