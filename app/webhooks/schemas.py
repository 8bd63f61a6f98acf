"""Webhook request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.core.schemas import StrictInput, StrictPatch

EventType = Literal["course.created", "course.phase_changed", "course.closed", "session.recorded", "measure.recorded",
                    "risk.flagged", "group.session_recorded", "group.member_joined", "group.member_left"]


# An http(s) URL with a host and no credentials: what check_url accepts before it resolves the host.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
WEBHOOK_URL_PATTERN = rf"^https?://[A-Za-z0-9.-]+(:{_PORT})?([/?#][!-~]*)?$"


def _unique(values: list[str] | None) -> list[str] | None:
    return sorted(set(values)) if values is not None else None


class WebhookCreate(StrictInput):
    """A subscription: where to deliver and which events."""

    url: str = Field(min_length=8, max_length=2000, pattern=WEBHOOK_URL_PATTERN)
    events: list[EventType] = Field(min_length=1, max_length=9)
    active: bool = True

    _unique_events = field_validator("events")(_unique)


class WebhookUpdate(StrictPatch):
    """Changes to a subscription."""

    not_null = ("url", "events", "active")
    url: str | None = Field(default=None, min_length=8, max_length=2000, pattern=WEBHOOK_URL_PATTERN)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=9)
    active: bool | None = None

    _unique_events = field_validator("events")(_unique)


class WebhookPublic(BaseModel):
    """A subscription (the secret is shown only when it is created)."""

    id: str
    url: str
    events: list[EventType]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    """The create response, with the signing secret shown once."""

    secret: str


class DeliveryPublic(BaseModel):
    """One event's delivery to a subscription: attempts so far and the outcome."""

    id: str
    subscription_id: str
    event_id: str
    event_type: EventType
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
