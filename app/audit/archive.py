"""Retention: whole months of the audit log written to a file a person can keep, then taken out of the database.

The file is NDJSON: a header line, one line per event (every hashed field with its seq, prev_hash and
hash), and a last line with each chain's head and the SHA-256 of every byte before that line. Each
organization's chain in the file runs on from where its last archive ended, so it verifies alone,
and the live log's verify starts from the head recorded in ``audit_archive``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.audit import chain, partitions, writer
from app.audit.models import AuditArchive, AuditEvent, AuditSeal
from app.audit.repository import LATEST_ARCHIVE, as_stored, copies_problem, its_event, lost_event_problem, sealed_rows
from app.core.db import transaction
from app.core.ids import new_id, rfc3339, utcnow

FORMAT = "ipt-audit-archive/1"
LINE_FIELDS = (*chain.HASHED_FIELDS, "prev_hash", "hash")


class ArchiveRefused(Exception):
    """Nothing was archived, and nothing changed: the reason says why."""


def parse_month(text: str) -> partitions.Month:
    """YYYY-MM as (year, month); anything else is refused."""
    try:
        year, month = (int(part) for part in text.split("-"))
        datetime(year, month, 1)
    except ValueError:
        raise ArchiveRefused(f"{text!r} is not a month (YYYY-MM)") from None
    if len(text) != 7:
        raise ArchiveRefused(f"{text!r} is not a month (YYYY-MM)")
    return year, month


def _month_text(month: partitions.Month) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


def _line(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode() + b"\n"


class _Sink:
    """The archive's lines, written to a file and hashed as they go."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.digest, self.events = file, hashlib.sha256(), 0

    def write(self, value: Any) -> None:
        data = _line(value)
        self.file.write(data)
        self.digest.update(data)


_ORGS = (sa.select(AuditSeal.organization_id, sa.func.max(AuditSeal.seq)).where(AuditSeal.at < sa.bindparam("boundary"))
         .group_by(AuditSeal.organization_id).order_by(AuditSeal.organization_id))
_UNSEALED = (sa.select(sa.func.count(), sa.func.min(AuditEvent.id))
             .where(AuditEvent.at < sa.bindparam("boundary"),
                    ~sa.exists().where(its_event, AuditSeal.at < sa.bindparam("boundary"))))
_KEPT_LIVE = (sa.select(AuditSeal.seq, AuditSeal.hash)
              .where(AuditSeal.organization_id == sa.bindparam("org"), AuditSeal.seq <= sa.bindparam("upto"),
                     AuditSeal.at >= sa.bindparam("boundary")))
_ARCHIVED_ORGS = sa.select(AuditArchive.organization_id).distinct()
_DEFAULT_ROWS = sa.text(f"SELECT count(*) FROM {partitions.SCHEMA}.audit_event_default WHERE at < :boundary")
_SQLITE_MONTHS = sa.text("SELECT DISTINCT substr(at, 1, 7) FROM audit_event WHERE at < :boundary ORDER BY 1")
LOCK_TRIES, LOCK_WAIT = 40, "250ms"  # a detach waits for the log's writers at most this long at a time


async def _locked(db: AsyncConnection, sql: str) -> None:
    """Run DDL that needs a lock the log's writers hold, waiting briefly at a time so requests never queue behind it for long."""
    for attempt in range(LOCK_TRIES):
        try:
            async with db.begin_nested():
                await db.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
                await db.execute(sa.text(sql))
            return
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03" or attempt == LOCK_TRIES - 1:
                raise
            await asyncio.sleep(0.1)


async def _months(db: AsyncConnection, boundary: datetime) -> list[partitions.Month]:
    """The months before ``boundary`` in the live log: partitions on PostgreSQL, months with events on SQLite."""
    if db.dialect.name == "postgresql":
        return [m for m in await partitions.months_of(db) if partitions.start_of(m) < boundary]
    rows = (await db.execute(_SQLITE_MONTHS, {"boundary": as_stored(db, boundary)})).scalars().all()
    return [parse_month(text) for text in rows]


async def _refuse_unless_whole(db: AsyncConnection, boundary: datetime, months: list[partitions.Month]) -> None:
    """Hold the months still and refuse if any of their events is unsealed or sits in DEFAULT."""
    if db.dialect.name == "postgresql":
        for month in months:  # stray inserts into these months wait; the current month's go on
            for table in partitions.TABLES:
                await _locked(db, f"LOCK TABLE {partitions.name(table, month)} IN SHARE MODE")
        await _locked(db, f"LOCK TABLE {partitions.SCHEMA}.audit_event_default IN SHARE MODE")
        if stray := await db.scalar(_DEFAULT_ROWS, {"boundary": boundary}):
            raise ArchiveRefused(f"{stray} event(s) before {_month_text(partitions.month_of(boundary))} sit in the "
                                 "DEFAULT partition (their month had none): move them into their month first (README, Audit)")
    count, first = (await db.execute(_UNSEALED, {"boundary": as_stored(db, boundary)})).one()
    if count:
        raise ArchiveRefused(f"{count} event(s) in those months are not sealed yet (first {first}): "
                             "run `ipt audit seal` (or wait for the sealer) and try again")


async def _write_chain(db: AsyncConnection, sink: _Sink, org: str, walk: chain.Walk, upto: int) -> None:
    """Write the organization's chain after ``walk`` up to seq ``upto``, verifying every link; refuse at a break."""
    async for event in sealed_rows(db, org, walk.seq, upto):
        if event["id"] is None:
            raise ArchiveRefused(f"organization {org or '(none)'}: {await lost_event_problem(db, walk, event)}")
        if problem := walk.step(event):
            raise ArchiveRefused(f"organization {org or '(none)'}: {problem}")
        sink.write({name: rfc3339(event[name]) if name == "at" else event[name] for name in LINE_FIELDS})
        sink.events += 1
    if walk.seq != upto:
        raise ArchiveRefused(f"organization {org or '(none)'}: missing: the chain ends at seq {walk.seq}, "
                             f"before seq {upto} of the months to archive")


async def _take_out(db: AsyncConnection, boundary: datetime, months: list[partitions.Month]) -> None:
    """Detach and drop the months' partitions (PostgreSQL), or delete their rows (SQLite)."""
    if db.dialect.name != "postgresql":
        for table in (AuditSeal, AuditEvent):
            await db.execute(sa.delete(table).where(table.at < as_stored(db, boundary)))
        return
    for month in months:
        for table in ("audit_seal", "audit_event"):
            await _locked(db, f"ALTER TABLE {table} DETACH PARTITION {partitions.name(table, month)}")
            await db.execute(sa.text(f"DROP TABLE {partitions.name(table, month)}"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def archive(engine: AsyncEngine, before: str, out: Path, operator: str | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """Archive every whole month before ``before`` (YYYY-MM, at most the current month) to ``out``; what was done.

    One transaction: verify the months' chains while writing ``out`` (as ``out.part``, fsynced, then
    renamed), record each chain's archived head, audit it (one operator event per organization), and
    take the months out. Refused with nothing changed if an event is unsealed or a chain is broken.
    """
    boundary_month = parse_month(before)
    current = partitions.month_of(now or utcnow())
    if boundary_month > current:
        raise ArchiveRefused(f"--before {before}: the current month ({_month_text(current)}) and later cannot be archived")
    boundary = partitions.start_of(boundary_month)
    partial, renamed = out.with_name(out.name + ".part"), False
    try:
        async with transaction(engine, write=True) as db:
            months = await _months(db, boundary)
            if not months:
                raise ArchiveRefused(f"nothing to archive: the live log has no month before {before}")
            await _refuse_unless_whole(db, boundary, months)
            stored = as_stored(db, boundary)
            orgs = (await db.execute(_ORGS, {"boundary": stored})).all()
            starts = {}
            for org, _upto in orgs:
                last = (await db.execute(LATEST_ARCHIVE, {"org": org})).first()
                if last is not None and (problem := await copies_problem(db, org, last)):
                    raise ArchiveRefused(f"organization {org or '(none)'}: {problem}")
                starts[org] = (last.seq, last.hash) if last else (0, chain.GENESIS)
            chains = {org: {"after_seq": starts[org][0], "after_hash": starts[org][1], "last_seq": upto}
                      for org, upto in orgs if upto > starts[org][0]}
            heads = {}
            with partial.open("wb") as file:
                sink = _Sink(file)
                sink.write({"format": FORMAT, "before": before, "months": [_month_text(m) for m in months],
                            "created_at": rfc3339(utcnow()), "organizations": chains})
                for org, span in chains.items():
                    walk = chain.Walk(span["after_seq"], span["after_hash"])
                    await _write_chain(db, sink, org, walk, span["last_seq"])
                    heads[org] = walk.hash
                checksum = sink.digest.hexdigest()
                file.write(_line({"end": {"events": sink.events, "heads": heads, "sha256": checksum}}))
                file.flush()
                os.fsync(file.fileno())
            partial.replace(out)
            renamed = True
            _fsync_dir(out)
            # Every organization with a chain in the file, or with events kept live by an earlier archive
            # that may now be gone: its head and the events at or below it still live, as of now.
            recorded = {org: (span["last_seq"], heads[org]) for org, span in chains.items()}
            for org in (await db.execute(_ARCHIVED_ORGS)).scalars().all():
                if org not in recorded:
                    last = (await db.execute(LATEST_ARCHIVE, {"org": org})).one()
                    recorded[org] = (last.seq, last.hash)
            # Audited first: on SQLite an event's position is its rowid, and a new rowid follows the
            # largest one left, so the event must be written before the rows are deleted.
            for org, span in chains.items():
                details = {"before": before, "months": [_month_text(m) for m in months], "first_seq": span["after_seq"] + 1,
                           "last_seq": span["last_seq"], "file": out.name, "sha256": checksum, "via": "cli"}
                await db.execute(sa.insert(AuditEvent).values(writer.operator_event(org, "archive", "audit_log", details, operator)))
            for org, (seq, digest) in recorded.items():
                kept = (await db.execute(_KEPT_LIVE, {"org": org, "upto": seq, "boundary": stored})).all()
                await db.execute(sa.insert(AuditArchive).values(
                    id=new_id(), organization_id=org, seq=seq, hash=digest, copies={str(s): h for s, h in kept},
                    before=before, file=out.name[:300], sha256=checksum, archived_at=utcnow()))
            await _take_out(db, boundary, months)
    except BaseException:
        partial.unlink(missing_ok=True)
        if renamed:
            out.unlink(missing_ok=True)  # the database kept everything: the file would archive nothing
        raise
    return {"out": str(out), "before": before, "months": [_month_text(m) for m in months], "events": sink.events,
            "organizations": len(chains), "sha256": checksum}


def verify_file(path: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Check an archive file on its own: its checksum, and every chain in it from where it starts to its head."""
    digest, header, walks, problems, events, end = hashlib.sha256(), {}, {}, {}, 0, None
    with path.open("rb") as file:
        for number, data in enumerate(file, start=1):
            try:
                value = json.loads(data)
                if end is not None:
                    return header, [("(file)", f"line {number}: more lines after the last one")]
                if number == 1:
                    if not isinstance(value, dict) or value.get("format") != FORMAT:
                        return {}, [("(file)", f"not an audit archive of format {FORMAT}")]
                    header = value
                    walks = {org: chain.Walk(span["after_seq"], span["after_hash"]) for org, span in value["organizations"].items()}
                elif set(value) == {"end"}:
                    end = value["end"]
                    continue
                else:
                    events += 1
                    org = value["organization_id"]
                    if org not in walks:
                        return header, [(org, f"line {number}: an event of an organization the header does not list")]
                    event = value | {"at": datetime.fromisoformat(value["at"].replace("Z", "+00:00"))}
                    if org not in problems and (problem := walks[org].step(event)):
                        problems[org] = problem  # the first break of each chain
            except (ValueError, KeyError, TypeError, AttributeError):
                return header, [("(file)", f"line {number} is not what an archive holds: the file is damaged")]
            digest.update(data)
    if not header:
        return {}, [("(file)", "empty file")]
    found = list(problems.items())
    if end is None:
        return header, [*found, ("(file)", "incomplete: the last line (heads and checksum) is missing")]
    if end.get("sha256") != digest.hexdigest() or end.get("events") != events:
        found.append(("(file)", "the checksum does not match the content: the file was changed"))
    for org, span in header["organizations"].items():
        walk = walks[org]
        if org not in problems and (walk.seq != span["last_seq"] or walk.hash != end.get("heads", {}).get(org)):
            found.append((org, f"missing: the chain ends at seq {walk.seq}, the archive says it ends at seq {span['last_seq']}"))
    return header | {"events": events, "sha256": end.get("sha256")}, found
