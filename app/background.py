"""Work the server process does besides answering requests: sealing the audit log, its months ahead, purging keys."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit import partitions
from app.audit import repository as audit
from app.core import idempotency
from app.core.db import transaction
from app.identity import repository as identity

log = logging.getLogger("ipt.background")
SEAL_BATCH = 2000  # events chained per transaction: the head's row lock is held this long
_reported_ahead: set[str] = set()  # chains that cannot be sealed, logged once per process each


async def seal_audit_log(engine: AsyncEngine, batch: int = SEAL_BATCH) -> int:
    """Chain every organization's unsealed audit events; returns how many were sealed.

    One batch per organization in turn, again while any batch came back full: a backlog drains at
    once instead of one batch a second, and no organization waits behind another's backlog.
    """
    async with transaction(engine, write=False) as db:
        waiting = await audit.organizations_with_unsealed(db)
    sealed = 0
    while waiting:
        full = []
        for organization_id in waiting:
            try:
                async with transaction(engine, write=True) as db:
                    count = await audit.seal(db, organization_id, batch)
            except audit.ChainAheadOfDatabase as exc:  # the other organizations' chains go on
                if organization_id not in _reported_ahead:
                    _reported_ahead.add(organization_id)
                    log.error("%s", exc)
                continue
            sealed += count
            if count == batch:
                full.append(organization_id)
        waiting = full
    return sealed


async def seal_everything_committed(engine: AsyncEngine, batch: int = SEAL_BATCH, wait_seconds: float = 10.0) -> int:
    """Seal every event committed before the call, once older writing transactions have ended (waiting up to ``wait_seconds``)."""
    if not await audit.wait_for_older_writers(engine, wait_seconds):
        log.warning("a writing transaction older than %.0f s is still open: events after it wait for it", wait_seconds)
    return await seal_audit_log(engine, batch)


PURGE_EVERY_SECONDS = 300
PARTITIONS_EVERY_SECONDS = 3600  # months are made three ahead: an hour late costs nothing


async def housekeeping_loop(engine: AsyncEngine, interval: float = 1.0) -> None:
    """Seal the audit log every ``interval`` seconds, purge idempotency keys and make audit months ahead now and then.

    Expired idempotency keys and client assertions' jtis go every five minutes; the audit log's partitions are made three
    months ahead every hour (PostgreSQL).

    Not more often by default: passes every 0.2 s cost the worker 60% more CPU (each pass has a
    fixed cost), taken from the API on a shared machine, for no gain measured at the p99.
    """
    ticks, purge_every = 0, max(1, round(PURGE_EVERY_SECONDS / interval))
    partitions_every = max(1, round(PARTITIONS_EVERY_SECONDS / interval))
    while True:
        try:
            if ticks % partitions_every == 0:
                await partitions.keep_months_ahead(engine)
            await seal_audit_log(engine)
            if ticks % purge_every == 0:
                async with transaction(engine, write=True) as db:
                    await idempotency.purge_expired(db)
                    await identity.forget_expired_assertions(db)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep going; the next tick retries
            log.warning("housekeeping failed: %s", type(exc).__name__)
        ticks += 1
        await asyncio.sleep(interval)
