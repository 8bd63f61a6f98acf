"""Delivers outbox events to subscribers: signed, retried with exponential backoff, logged.

Every process may run a worker. Deliveries are leased with ``FOR UPDATE SKIP LOCKED`` and a lease
time, so several workers on one PostgreSQL never send the same delivery at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import transaction
from app.core.http import dumps
from app.core.ids import rfc3339, utcnow
from app.core.security import SecretBox
from app.webhooks import repository
from app.webhooks.signing import check_url, sign

log = logging.getLogger("ipt.webhooks")
MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 5
MAX_DELAY_SECONDS = 3600
LEASE_SECONDS = 60
TIMEOUT_SECONDS = 10
FAN_OUT_BATCH = 1000  # outbox events turned into deliveries per transaction


def backoff(attempts: int, base: float = BASE_DELAY_SECONDS) -> float:
    """Seconds before the next try after ``attempts`` failures: base * 2^(attempts-1), capped at an hour."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_DELAY_SECONDS)


def payload(delivery: dict[str, Any]) -> bytes:
    """The body: ``{"id", "type", "created_at", "data"}`` (ids and facts only)."""
    return dumps({"id": delivery["event_id"], "type": delivery["type"],
                  "created_at": rfc3339(delivery["created_at"]), "data": delivery["data"]})


class Worker:
    """Fans out the outbox and delivers due webhooks, in a loop or one pass at a time."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, allow_private: bool, base_delay: float = BASE_DELAY_SECONDS) -> None:
        self.engine, self.box, self.allow_private, self.base_delay = engine, box, allow_private, base_delay
        self.http = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    async def run_once(self) -> int:
        """One pass: fan out every new event, then deliver what is due; returns deliveries attempted."""
        while await self._fan_out() == FAN_OUT_BATCH:  # a burst of events drains now, not a batch a second
            pass
        async with transaction(self.engine, write=True) as db:
            due = await repository.claim_due(db, utcnow() + timedelta(seconds=LEASE_SECONDS))
        await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def _fan_out(self) -> int:
        async with transaction(self.engine, write=True) as db:
            return await repository.fan_out(db, FAN_OUT_BATCH)

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        body = payload(delivery)
        timestamp = int(time.time())
        status_code, error = None, None
        try:
            secret = self.box.open(delivery["secret"], delivery["subscription_id"])
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery["event_id"],
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, delivery["event_id"], timestamp, body),
                "user-agent": "ipt-api-webhooks/1",
            }
            await asyncio.to_thread(check_url, delivery["url"], self.allow_private)  # DNS may have changed
            response = await self.http.post(delivery["url"], content=body, headers=headers)
            status_code = response.status_code
            error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is recorded and retried
            error = type(exc).__name__
        attempts = delivery["attempts"] + 1
        values: dict[str, Any] = {"attempts": attempts, "last_attempt_at": utcnow(), "last_status_code": status_code,
                                  "last_error": error}
        if error is None:
            values["status"] = "delivered"
        elif attempts >= MAX_ATTEMPTS:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = utcnow() + timedelta(seconds=backoff(attempts, self.base_delay))
        async with transaction(self.engine, write=True) as db:
            await repository.finish(db, delivery["id"], values)
        log.info("webhook delivery %s attempt %d: %s", delivery["id"], attempts, error or "delivered")

    async def loop(self, interval: float = 1.0) -> None:
        """Run passes until cancelled; a failing pass is logged and retried."""
        try:
            while True:
                try:
                    attempted = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    log.warning("webhook pass failed: %s", type(exc).__name__)
                    attempted = 0
                if not attempted:
                    await asyncio.sleep(interval)
        finally:
            await self.http.aclose()
