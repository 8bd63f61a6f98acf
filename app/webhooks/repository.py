"""Every query on subscriptions, outbox events and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.ids import new_id, utcnow
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, one_or_404, require_version, update_versioned
from app.webhooks.models import OutboxEvent, WebhookDelivery, WebhookSubscription

PUBLIC = ("id", "url", "events", "active", "version", "created_at", "updated_at")
_public = columns(WebhookSubscription, PUBLIC)
_delivery = [*columns(WebhookDelivery, ("id", "subscription_id", "event_id", "status", "attempts", "next_attempt_at",
                                        "last_attempt_at", "last_status_code", "last_error", "created_at")),
             OutboxEvent.type.label("event_type")]


def _mine(organization_id: str, subscription_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(WebhookSubscription.id == subscription_id, WebhookSubscription.organization_id == organization_id)


async def create(db: AsyncConnection, organization_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a subscription."""
    row = new_row(WebhookSubscription, {"organization_id": organization_id, **values})
    await db.execute(sa.insert(WebhookSubscription).values(row))
    return {name: row[name] for name in PUBLIC}


async def get(db: AsyncConnection, organization_id: str, subscription_id: str) -> dict[str, Any]:
    """One subscription of the organization, or 404."""
    return await one_or_404(db, sa.select(*_public).where(_mine(organization_id, subscription_id)), "No such webhook.")


async def list_page(db: AsyncConnection, organization_id: str, page: Page) -> dict:
    """A page of the organization's subscriptions."""
    query = sa.select(*_public).where(WebhookSubscription.organization_id == organization_id)
    return await fetch_page(db, query, WebhookSubscription.id, page)


async def update(db: AsyncConnection, organization_id: str, subscription_id: str, version: int, changes: dict) -> dict:
    """Change a subscription at the version the caller read."""
    return await update_versioned(db, WebhookSubscription, _mine(organization_id, subscription_id), version, changes, _public)


async def delete(db: AsyncConnection, organization_id: str, subscription_id: str, version: int) -> None:
    """Delete a subscription and its delivery log."""
    await require_version(db, WebhookSubscription, _mine(organization_id, subscription_id), version)
    await db.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id))
    await db.execute(sa.delete(WebhookSubscription).where(WebhookSubscription.id == subscription_id))


async def deliveries(db: AsyncConnection, subscription_id: str, page: Page) -> dict:
    """A page of a subscription's delivery log, oldest first."""
    query = (
        sa.select(*_delivery)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.subscription_id == subscription_id)
    )
    return await fetch_page(db, query, WebhookDelivery.id, page)


async def get_delivery(db: AsyncConnection, subscription_id: str, delivery_id: str) -> dict[str, Any]:
    """One delivery of the subscription, or 404."""
    query = (
        sa.select(*_delivery)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id)
    )
    return await one_or_404(db, query, "No such delivery.")


async def schedule_retry(db: AsyncConnection, delivery_id: str) -> None:
    """Make a delivery due now (a manual retry), whatever its state."""
    stmt = sa.update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
        status="pending", next_attempt_at=utcnow(), locked_until=None)
    await db.execute(stmt)


# the worker's queries --------------------------------------------------------------
async def fan_out(db: AsyncConnection, batch: int = 200) -> int:
    """Turn undispatched outbox events into one delivery per matching active subscription."""
    query = (
        sa.select(OutboxEvent.id, OutboxEvent.organization_id, OutboxEvent.type)
        .where(OutboxEvent.dispatched_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    events = (await db.execute(query)).all()
    if not events:
        return 0
    orgs = {e.organization_id for e in events}
    subs = (
        await db.execute(
            sa.select(WebhookSubscription.id, WebhookSubscription.organization_id, WebhookSubscription.events).where(
                WebhookSubscription.organization_id.in_(orgs), WebhookSubscription.active.is_(True)
            )
        )
    ).all()
    now = utcnow()
    rows = [
        {"id": new_id(), "organization_id": e.organization_id, "subscription_id": s.id, "event_id": e.id,
         "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
        for e in events for s in subs if s.organization_id == e.organization_id and e.type in s.events
    ]
    if rows:
        await db.execute(sa.insert(WebhookDelivery), rows)
    await db.execute(
        sa.update(OutboxEvent).where(OutboxEvent.id.in_([e.id for e in events])).values(dispatched_at=now)
    )
    return len(events)


async def claim_due(db: AsyncConnection, lease_until: datetime, batch: int = 20) -> list[dict[str, Any]]:
    """Lease due deliveries to this worker; SKIP LOCKED and the lease keep other workers off them."""
    now = utcnow()
    query = (
        sa.select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            sa.or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    ids = list((await db.scalars(query)).all())
    if not ids:
        return []
    await db.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(locked_until=lease_until))
    details = (
        sa.select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookSubscription.id.label("subscription_id"),
                  WebhookSubscription.url, WebhookSubscription.secret,
                  OutboxEvent.id.label("event_id"), OutboxEvent.type, OutboxEvent.data, OutboxEvent.created_at)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(ids))
    )
    return [dict(r) for r in (await db.execute(details)).mappings().all()]


async def finish(db: AsyncConnection, delivery_id: str, values: dict[str, Any]) -> None:
    """Record an attempt's outcome and release the lease."""
    await db.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values, locked_until=None))
