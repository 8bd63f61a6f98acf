"""PostgreSQL's audit log, one partition a calendar month (UTC): making months ahead, listing them, their DDL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.db import transaction

log = logging.getLogger("ipt.audit")
SCHEMA = "audit_partitions"  # out of the app's schema: its tables and indexes carry PostgreSQL's own names
TABLES = ("audit_event", "audit_seal")  # a seal lives in its event's month, so a month detaches whole
MONTHS_AHEAD = 3
Month = tuple[int, int]


def month_of(moment: datetime) -> Month:
    """The (year, month) of a moment, in UTC."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.year, moment.month


def next_month(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def start_of(month: Month) -> datetime:
    """The first instant of a month, in UTC."""
    return datetime(month[0], month[1], 1, tzinfo=UTC)


def name(table: str, month: Month) -> str:
    """The partition of ``table`` holding ``month``, e.g. audit_partitions.audit_event_2027_01."""
    return f"{SCHEMA}.{table}_{month[0]:04d}_{month[1]:02d}"


def ddl(table: str, month: Month) -> list[str]:
    """The statements that make one month's partition of ``table`` (as migration 0011 made the first ones).

    Made apart and then attached: ATTACH takes a lock that lets inserts go on, where CREATE TABLE ...
    PARTITION OF would queue every insert behind it. A partition's TRUNCATE trigger is its own:
    TRUNCATE triggers of the partitioned table do not reach its partitions.
    """
    upper = next_month(month)
    return [
        f"CREATE TABLE {name(table, month)} (LIKE {table} INCLUDING DEFAULTS)",
        f"ALTER TABLE {table} ATTACH PARTITION {name(table, month)} FOR VALUES "
        f"FROM ('{start_of(month).isoformat()}') TO ('{start_of(upper).isoformat()}')",
        f"CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {name(table, month)} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    ]


_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('ipt.audit.partitions'))")  # one maker at a time, any process
_EXISTS = sa.text("SELECT to_regclass(:name) IS NOT NULL")


async def ensure_months(db: AsyncConnection, months: list[Month]) -> list[str]:
    """Make the partitions of ``months`` that do not exist yet (PostgreSQL; nothing on SQLite); the names made.

    Idempotent and safe from several processes at once. Fails (and makes nothing) if the DEFAULT
    partition already holds events of such a month: see the README (Audit).
    """
    if db.dialect.name != "postgresql":
        return []
    await db.execute(_LOCK)
    await db.execute(sa.text("SET LOCAL lock_timeout = '5s'"))  # never hold inserts up for long
    made = []
    for month in months:
        for table in TABLES:
            if await db.scalar(_EXISTS, {"name": name(table, month)}):
                continue
            for statement in ddl(table, month):
                await db.execute(sa.text(statement))
            made.append(name(table, month))
    return made


def months_ahead(now: datetime, ahead: int = MONTHS_AHEAD) -> list[Month]:
    """The current month and ``ahead`` after it."""
    months = [month_of(now)]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    return months


_failed_once: list[str] = []


async def keep_months_ahead(engine: AsyncEngine, now: datetime | None = None) -> list[str]:
    """Make sure this month and the next three have partitions (the housekeeping loop calls it every hour).

    A failure (another role owns the tables, a lock not granted in 5 s) is logged once per process and
    tried again next time; meanwhile events still land, in the months made ahead or in DEFAULT.
    """
    if engine.dialect.name != "postgresql":
        return []
    try:
        async with transaction(engine, write=True) as db:
            made = await ensure_months(db, months_ahead(now or datetime.now(UTC)))
    except sa.exc.DBAPIError as exc:
        if not _failed_once:
            _failed_once.append(type(exc.orig).__name__)
            log.error("audit log partitions ahead could not be made (%s): %s", type(exc.orig).__name__,
                      str(exc.orig).splitlines()[0][:200])
        return []
    for made_name in made:
        log.info("audit log partition %s made", made_name)
    return made


_LISTED = sa.text("""
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:table AS regclass) ORDER BY c.relname
""")


async def months_of(db: AsyncConnection, table: str = "audit_event") -> list[Month]:
    """The months that have a partition of ``table`` (the DEFAULT partition aside), oldest first."""
    months = []
    for relname, _bound in (await db.execute(_LISTED, {"table": table})).all():
        parts = relname.rsplit("_", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            months.append((int(parts[1]), int(parts[2])))
    return sorted(months)
