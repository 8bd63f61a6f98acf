"""Retention: `ipt audit archive --before YYYY-MM` verifies whole past months, writes them to a file that verifies on
its own, records where each chain ends so the live log still verifies, takes the months out, and refuses with
nothing changed when a month is not whole, sealed and intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.audit import partitions
from app.audit import repository as audit_repository
from app.background import seal_everything_committed
from app.core.db import make_engine, transaction
from app.core.ids import utcnow
from tests.audit.test_audit_partitions import event_at
from tests.conftest import require_postgres, test_settings
from tests.support.databases import migrate, throwaway_database

ROOT = Path(__file__).resolve().parents[2]
AUG, SEP, OCT, NOV = (datetime(2026, m, 10, 12, tzinfo=UTC) for m in (8, 9, 10, 11))


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A migrated database of its own: archiving takes months out of the whole log."""
    if request.param == "postgres":
        require_postgres()
    with throwaway_database(request.param, tmp_path) as url:
        migrate(url)
        yield url


@pytest.fixture
async def engine(fresh_url: str) -> AsyncIterator:
    engine = make_engine(test_settings(fresh_url))
    async with transaction(engine, write=True) as db:  # PostgreSQL: the past months the tests write into
        await partitions.ensure_months(db, [(2026, m) for m in range(8, 12)])
    yield engine
    await engine.dispose()


def ipt(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The real CLI in its own process."""
    env = {**os.environ, "IPT_DATABASE_URL": url, "IPT_ENV": "test", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


async def seal(engine) -> None:
    """Seal everything committed (waiting longer than the CLI for older writers: the horizon is the whole cluster's)."""
    await seal_everything_committed(engine, wait_seconds=120)


async def write(engine, events: list[dict]) -> None:
    for event in events:  # one transaction each: chained in this order
        async with transaction(engine, write=True) as db:
            await audit_repository.insert(db, event)


async def rows(engine, sql: str, **params) -> list[tuple]:
    async with engine.connect() as db:
        return [tuple(r) for r in (await db.execute(sa.text(sql), params)).all()]


async def verify(engine) -> list:
    async with transaction(engine, write=False) as db:
        return await audit_repository.verify(db)


async def tamper(engine, sql: str, **params) -> None:
    async with transaction(engine, write=True) as db:
        if db.dialect.name == "postgresql":  # a superuser, past the append-only triggers
            await db.execute(sa.text("SET LOCAL session_replication_role = replica"))
        await db.execute(sa.text(sql), params)


async def two_orgs_over_four_months(engine) -> tuple[str, str, list[dict]]:
    """Two organizations with events in August to November and now, all sealed."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    events = [event_at(org, at) for at in (AUG, SEP, OCT, NOV) for org in (a, b)] + [event_at(a, utcnow())]
    await write(engine, events)
    await seal(engine)
    return a, b, events


async def test_archive_takes_whole_months_out_into_a_file_that_verifies_and_the_live_log_stays_intact(engine, fresh_url, tmp_path):
    a, b, events = await two_orgs_over_four_months(engine)
    done = ipt(fresh_url, tmp_path, "audit", "archive", "--before", "2026-10", "--out", "first.ndjson")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["months"], summary["events"], summary["organizations"]) == (["2026-08", "2026-09"], 4, 2)
    assert not (tmp_path / "first.ndjson.part").exists()
    lines = (tmp_path / "first.ndjson").read_bytes().splitlines()
    header, end = json.loads(lines[0]), json.loads(lines[-1])["end"]
    assert header["organizations"][a] == {"after_seq": 0, "after_hash": "0" * 64, "last_seq": 2}
    in_file = [e["id"] for org in sorted((a, b)) for e in events if e["organization_id"] == org and e["at"] < OCT]
    assert [json.loads(line)["id"] for line in lines[1:-1]] == in_file  # chain by chain, each in seq order
    assert end["events"] == 4 and end["sha256"] == summary["sha256"]

    assert await rows(engine, "SELECT count(*) FROM audit_event WHERE at < :oct", oct=OCT) == [(0,)]
    assert await rows(engine, "SELECT count(*) FROM audit_seal WHERE at < :oct", oct=OCT) == [(0,)]
    if engine.dialect.name == "postgresql":  # detached and dropped, both tables
        assert await rows(engine, "SELECT to_regclass('audit_partitions.audit_event_2026_09'), "
                                  "to_regclass('audit_partitions.audit_seal_2026_08')") == [(None, None)]
    archived = await rows(engine, "SELECT organization_id, seq, copies FROM audit_archive ORDER BY organization_id")
    assert sorted((org, seq) for org, seq, _ in archived) == sorted([(a, 2), (b, 2)])
    audited = await rows(engine, "SELECT organization_id, actor_type, details FROM audit_event WHERE action = 'archive'")
    assert sorted(org for org, _, _ in audited) == sorted([a, b]) and {kind for _, kind, _ in audited} == {"operator"}
    details = audited[0][2] if isinstance(audited[0][2], dict) else json.loads(audited[0][2])
    assert details["file"] == "first.ndjson" and details["sha256"] == summary["sha256"] and details["via"] == "cli"

    await seal(engine)  # the archive's own events are chained on
    assert await verify(engine) == []
    checked = ipt(fresh_url, tmp_path, "audit", "verify")
    assert checked.returncode == 0 and "intact" in checked.stdout, checked.stderr
    alone = ipt(fresh_url, tmp_path, "audit", "verify", "--archive", "first.ndjson")
    assert alone.returncode == 0 and "intact: 4 events of 2 organization(s), months 2026-08, 2026-09" in alone.stdout

    second = ipt(fresh_url, tmp_path, "audit", "archive", "--before", "2026-11", "--out", "second.ndjson")
    assert second.returncode == 0, second.stderr
    header = json.loads((tmp_path / "second.ndjson").read_bytes().splitlines()[0])
    assert header["months"] == ["2026-10"]
    assert header["organizations"][a]["after_seq"] == 2  # runs on from where the first archive ended
    assert header["organizations"][a]["after_hash"] == json.loads(lines[-1])["end"]["heads"][a]
    assert ipt(fresh_url, tmp_path, "audit", "verify", "--archive", "second.ndjson").returncode == 0
    await seal(engine)
    assert await verify(engine) == []


async def test_an_event_dated_before_the_boundary_but_chained_after_a_later_one_is_archived_and_the_later_one_kept(engine, tmp_path):
    """Chains follow commit order, months follow `at`: at a boundary they can disagree, and both must still verify."""
    from app.audit import archive

    org = str(uuid.uuid4())
    early_october = event_at(org, datetime(2026, 10, 1, 0, 0, 1, tzinfo=UTC))
    late_september = event_at(org, datetime(2026, 9, 30, 23, 59, 59, tzinfo=UTC))
    first = event_at(org, SEP)
    await write(engine, [first, early_october, late_september])  # seq 1 (Sep), 2 (Oct), 3 (Sep)
    await seal(engine)
    await archive.archive(engine, "2026-10", tmp_path / "sep.ndjson")
    kept = "SELECT id FROM audit_event WHERE organization_id = :o AND action <> 'archive'"  # the archive's own event aside
    assert await rows(engine, kept, o=org) == [(early_october["id"],)]
    [(seq, copies)] = await rows(engine, "SELECT seq, copies FROM audit_archive WHERE organization_id = :o", o=org)
    copies = copies if isinstance(copies, dict) else json.loads(copies)
    assert seq == 3 and list(copies) == ["2"]
    header, problems = archive.verify_file(tmp_path / "sep.ndjson")
    assert problems == [] and header["events"] == 3  # the October event too, as a copy: the file's chain has no gap
    await seal(engine)
    assert await verify(engine) == []

    await tamper(engine, "UPDATE audit_event SET ip = '10.1.1.1' WHERE id = :id", id=early_october["id"])
    assert await verify(engine) == [(org, f"altered: event {early_october['id']} (seq 2) does not match its hash")]
    await tamper(engine, "UPDATE audit_event SET ip = :ip WHERE id = :id", ip=early_october["ip"], id=early_october["id"])

    await archive.archive(engine, "2026-11", tmp_path / "oct.ndjson")  # October goes, the copy with it
    header, problems = archive.verify_file(tmp_path / "oct.ndjson")
    assert problems == [] and org not in header["organizations"]  # nothing of it after seq 3 before November
    assert await rows(engine, kept, o=org) == []
    await seal(engine)
    assert await verify(engine) == []


async def _nothing_changed(engine, tmp_path: Path, before: list) -> None:
    assert await rows(engine, "SELECT id FROM audit_event ORDER BY id") == before
    assert await rows(engine, "SELECT count(*) FROM audit_archive") == [(0,)]
    assert list(tmp_path.glob("*.ndjson*")) == []


@pytest.mark.parametrize("case", ["unsealed", "altered", "deleted", "current_month", "next_month", "not_a_month", "nothing"])
async def test_archive_refuses_with_exit_1_and_changes_nothing(engine, fresh_url, tmp_path, case):
    a, _, events = await two_orgs_over_four_months(engine)
    before = "2026-10"
    if case == "unsealed":
        await write(engine, [event_at(a, SEP)])
    elif case == "altered":
        await tamper(engine, "UPDATE audit_event SET outcome = 500 WHERE id = :id", id=events[2]["id"])
    elif case == "deleted":
        await tamper(engine, "DELETE FROM audit_event WHERE id = :id", id=events[0]["id"])
    elif case == "current_month":
        now = utcnow()
        before = f"{now.year + 1}-01" if now.month == 12 else f"{now.year}-{now.month + 1:02d}"
    elif case == "next_month":
        before = "2099-01"
    elif case == "not_a_month":
        before = "2026-9"
    elif case == "nothing":
        before = "2026-08"
    present = await rows(engine, "SELECT id FROM audit_event ORDER BY id")
    done = ipt(fresh_url, tmp_path, "audit", "archive", "--before", before, "--out", "x.ndjson")
    assert done.returncode == 1 and done.stdout == ""
    reason = done.stderr.strip()
    assert reason.startswith("ipt: error: nothing archived: ") and "\n" not in reason
    expected = {"unsealed": "not sealed yet", "altered": f"altered: event {events[2]['id']}", "deleted": "missing",
                "current_month": "cannot be archived", "next_month": "cannot be archived", "not_a_month": "is not a month",
                "nothing": "nothing to archive"}[case]
    assert expected in reason
    await _nothing_changed(engine, tmp_path, present)


async def test_verify_of_an_archive_file_names_what_was_changed_in_it(engine, tmp_path):
    from app.audit import archive

    a, b, events = await two_orgs_over_four_months(engine)
    await archive.archive(engine, "2026-11", tmp_path / "a.ndjson")
    original = (tmp_path / "a.ndjson").read_bytes().splitlines(keepends=True)
    assert archive.verify_file(tmp_path / "a.ndjson")[1] == []

    def changed(name: str, lines: list[bytes]) -> list:
        (tmp_path / name).write_bytes(b"".join(lines))
        return archive.verify_file(tmp_path / name)[1]

    event = json.loads(original[3])
    edited = original[:3] + [json.dumps(event | {"ip": "10.0.0.1"}, sort_keys=True, separators=(",", ":")).encode() + b"\n"] + original[4:]
    problems = changed("edited.ndjson", edited)
    assert (event["organization_id"], f"altered: event {event['id']} (seq {event['seq']}) does not match its hash") in problems
    assert ("(file)", "the checksum does not match the content: the file was changed") in problems
    assert changed("cut.ndjson", original[:-2]) == [("(file)", "incomplete: the last line (heads and checksum) is missing")]
    swapped = changed("swapped.ndjson", [original[0], original[3], original[2], original[1], *original[4:]])
    assert any(problem.startswith("missing: expected seq 1") or problem.startswith("reordered") for _, problem in swapped)
    assert changed("other.ndjson", [b'{"format": "something else"}\n']) == [("(file)", "not an audit archive of format ipt-audit-archive/1")]
