"""Several API processes behind nginx: each webhook delivered once, each audit event sealed once.

The benchmarked organization subscribes a receiver on loopback (tests/support/receiver.py) to
every event type; after each API run of the configuration, with its worker still running, the
bench waits until the outbox is fanned out, every delivery attempted and every audit event sealed,
then counts deliveries by webhook-id at the receiver against the database, and runs `ipt audit verify`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
from common import BenchError, run_ipt
from servers import http

from app.webhooks.outbox import EVENT_TYPES
from tests.support.receiver import Receiver, receiver

DRAIN_SECONDS = 300


class Deliveries:
    """The receiver, the subscription, and what arrived against what the database holds."""

    def __init__(self, database_url: str, env: dict[str, str], state: Receiver) -> None:
        self.url, self.env, self.state = database_url, env, state
        self.subscription: str | None = None
        self.since = datetime.now(UTC)  # audit events from here on are the configuration's
        self.checks: list[dict] = []

    def subscribe(self, base: str, admin_token: str) -> None:
        """Subscribe the receiver to every event type through the API, once."""
        if self.subscription:
            return
        body = json.dumps({"url": self.state.url, "events": list(EVENT_TYPES)}).encode()
        status, raw = http("POST", base + "/v1/webhooks", data=body, headers={
            "Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"})
        if status != 201:
            raise BenchError(f"POST /v1/webhooks answered {status}: {raw[:300]!r}")
        created = json.loads(raw)
        self.subscription, self.state.secret = created["id"], created["secret"]

    def _waiting(self, conn: psycopg.Connection) -> tuple[int, int, int]:
        return conn.execute(
            "SELECT (SELECT count(*) FROM outbox_event WHERE dispatched_at IS NULL), "
            "(SELECT count(*) FROM webhook_delivery WHERE status = 'pending'), "
            "(SELECT count(*) FROM audit_event e WHERE e.at >= %s "
            " AND NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.event_id = e.id))", (self.since,)).fetchone()

    def drain(self) -> float:
        """Wait until the worker has fanned out, delivered and sealed everything; the seconds it took."""
        started = time.monotonic()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while any(waiting := self._waiting(conn)):
                if time.monotonic() - started > DRAIN_SECONDS:
                    raise BenchError(f"after {DRAIN_SECONDS} s the worker still had {waiting[0]} outbox events to fan "
                                     f"out, {waiting[1]} deliveries pending and {waiting[2]} audit events unsealed")
                time.sleep(0.5)
        return time.monotonic() - started

    def check(self, label: str) -> dict:
        """Deliveries by webhook-id at the receiver against the outbox; seals against the audit events."""
        drained = self.drain()
        with psycopg.connect(self.url, autocommit=True) as conn:
            delivered = {r[0]: r[1] for r in conn.execute(
                "SELECT d.event_id, d.status FROM webhook_delivery d WHERE d.subscription_id = %s",
                (self.subscription,))}
            unfanned = conn.execute(  # events of the organization since it subscribed that got no delivery
                "SELECT count(*) FROM outbox_event o JOIN webhook_subscription s ON s.id = %s "
                "AND o.organization_id = s.organization_id AND o.created_at >= s.created_at "
                "WHERE NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_id = o.id AND d.subscription_id = s.id)",
                (self.subscription,)).fetchone()[0]
            events, sealed, seqs = conn.execute(
                "SELECT count(*), count(s.event_id), count(DISTINCT (s.organization_id, s.seq)) FROM audit_event e "
                "LEFT JOIN audit_seal s ON s.event_id = e.id WHERE e.at >= %s", (self.since,)).fetchone()
        with self.state.lock:
            arrived = Counter(r["id"] for r in self.state.received)
            bad_signatures = sum(not r["signature_ok"] for r in self.state.received)
        verify = run_ipt(self.env, "audit", "verify").strip()
        result = {
            "label": label, "drain_seconds": drained, "events": len(delivered),
            "delivered_once": sum(1 for e in delivered if arrived[e] == 1),
            "duplicated": sum(1 for e in delivered if arrived[e] > 1),
            "missing": sum(1 for e in delivered if arrived[e] == 0) + unfanned,
            "unexpected": sum(1 for e in arrived if e not in delivered),
            "not_delivered": sum(1 for s in delivered.values() if s != "delivered"),
            "bad_signatures": bad_signatures,
            "audit_events": events, "sealed": sealed, "unsealed": events - sealed, "sealed_twice": sealed - seqs,
            "verify": verify,
        }
        result["ok"] = (result["delivered_once"] == result["events"] and not result["unexpected"]
                        and not result["missing"] and not result["not_delivered"] and not bad_signatures
                        and events == sealed == seqs)
        print(f"{label}: {result['events']} webhook events, {result['delivered_once']} delivered exactly once, "
              f"{result['duplicated']} more than once, {result['missing']} missing, {result['unexpected']} unexpected; "
              f"{events} audit events since the configuration started, {sealed} sealed ({sealed - seqs} twice); "
              f"{verify} (drained in {drained:.1f} s)")
        self.checks.append(result)
        return result


@contextlib.contextmanager
def deliveries(database_url: str, env: dict[str, str]) -> Iterator[Deliveries]:
    """A receiver on loopback for the configuration's webhooks, stopped on exit."""
    with receiver() as state:
        yield Deliveries(database_url, env, state)
