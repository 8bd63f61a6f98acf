"""Work the server process does besides answering requests: sealing the audit log, purging keys."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit import repository as audit
from app.core import idempotency
from app.core.db import transaction

log = logging.getLogger("ipt.background")


async def seal_audit_log(engine: AsyncEngine) -> int:
    """Chain every organization's unsealed audit events; returns how many were sealed."""
    async with transaction(engine, write=False) as db:
        organizations = await audit.organizations_with_unsealed(db)
    sealed = 0
    for organization_id in organizations:
        async with transaction(engine, write=True) as db:
            sealed += await audit.seal(db, organization_id)
    return sealed


async def housekeeping_loop(engine: AsyncEngine, interval: float = 1.0) -> None:
    """Seal the audit log every second and purge expired idempotency keys every few minutes."""
    ticks = 0
    while True:
        try:
            await seal_audit_log(engine)
            if ticks % 300 == 0:
                async with transaction(engine, write=True) as db:
                    await idempotency.purge_expired(db)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep going; the next tick retries
            log.warning("housekeeping failed: %s", type(exc).__name__)
        ticks += 1
        await asyncio.sleep(interval)
