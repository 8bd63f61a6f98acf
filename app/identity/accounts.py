"""The callers' account rows, cached per process and dropped the moment PostgreSQL says they changed.

Every request needs its caller's account (is the user active, with which roles; is the integration
still live) so that deactivation and revocation bite at the next request. Reading it is a round
trip per request; instead each process keeps what it read, and one LISTEN connection per process
evicts an entry as soon as any process (or an operator's SQL) commits a change to that account:
triggers on every change to app_user and integration NOTIFY on commit (migration 0007). The process that made the
change also evicts at once, without waiting for the notification.

The cache is used only while the LISTEN connection is up; when it drops, everything is forgotten
and every request reads the account again until it is back. A generation number keeps a row read
before an eviction from being stored after it. SQLite has no NOTIFY: there every request reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

CHANNEL = "ipt_account_changed"
log = logging.getLogger("ipt.accounts")


def key(kind: str, account_id: str) -> str:
    """The cache key (and NOTIFY payload) of a user or an integration."""
    return f"{kind}:{account_id}"


class AccountCache:
    """Account rows by key, trusted only while the LISTEN connection is up."""

    def __init__(self, ttl_seconds: float = 30.0, max_entries: int = 50_000) -> None:
        self.ttl_seconds = ttl_seconds  # a backstop only: changes evict at once
        self.max_entries = max_entries
        self.live = False
        self.generation = 0
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, account: str) -> Any | None:
        """The cached row, or None when unknown, stale, or the cache is not live."""
        entry = self._entries.get(account) if self.live else None
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, account: str, row: Any, generation: int) -> None:
        """Keep a row read at ``generation``, unless something changed since."""
        if not self.live or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # bounded memory; the callers that matter come back in one read
        self._entries[account] = (time.monotonic() + self.ttl_seconds, row)

    def evict(self, account: str) -> None:
        """Forget one account (and refuse rows read before now)."""
        self.generation += 1
        self._entries.pop(account, None)

    def forget_all(self) -> None:
        """Forget everything (and refuse rows read before now)."""
        self.generation += 1
        self._entries.clear()

    async def listen(self, database_url: str, retry_seconds: float = 1.0) -> None:
        """Follow the change notifications for as long as the task runs, reconnecting after failures."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(database_url, autocommit=True, connect_timeout=5) as conn:
                    if not await _reaches_the_server_itself(conn):
                        log.error("the LISTEN connection goes through a connection pooler, which does not pass notifications "
                                  "on: set IPT_DATABASE_DIRECT_URL to the server; until then accounts are read per request")
                        return
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.forget_all()  # rows read before LISTEN took effect may have missed a change
                    self.live = True
                    async for notice in conn.notifies():
                        self.evict(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever broke the connection, read from the database meanwhile
                log.warning("account change notifications lost (%s); reading accounts per request", type(exc).__name__)
            finally:
                self.live = False
                self.forget_all()
            await asyncio.sleep(retry_seconds)


async def _reaches_the_server_itself(conn: psycopg.AsyncConnection) -> bool:
    """Whether the connection is PostgreSQL's own session (a pooler announces a process id of its own)."""
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    return row is not None and row[0] == conn.info.backend_pid
