"""Webhook subscriptions, the transactional outbox, and the delivery log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field, org_field, timestamp_field


class WebhookSubscription(SQLModel, table=True):
    """An integrator's endpoint and the event types it wants; the secret signs every delivery."""

    __tablename__ = "webhook_subscription"
    id: str = id_field()
    organization_id: str = org_field()
    url: str = Field(max_length=2000)
    events: list[str] = json_field()
    active: bool = Field(default=True)
    secret: str = Field(max_length=200)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class OutboxEvent(SQLModel, table=True):
    """An event written in the same transaction as the change it announces."""

    __tablename__ = "outbox_event"
    # Only the events not yet fanned out, in order: small however many have been dispatched.
    __table_args__ = (sa.Index("ix_outbox_event_pending", "id", postgresql_where=sa.text("dispatched_at IS NULL"),
                               sqlite_where=sa.text("dispatched_at IS NULL")),)
    id: str = id_field()
    organization_id: str = org_field()
    type: str = Field(max_length=64)
    data: dict = json_field(dict)
    created_at: datetime = created_at_field()
    dispatched_at: datetime | None = timestamp_field()


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: its attempts, next try and outcome."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id"),
        sa.Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
    )
    id: str = id_field()
    organization_id: str = org_field()
    subscription_id: str = Field(foreign_key="webhook_subscription.id", max_length=36, index=True)
    event_id: str = Field(foreign_key="outbox_event.id", max_length=36)
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = created_at_field()
    last_attempt_at: datetime | None = timestamp_field()
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=300)
    locked_until: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
