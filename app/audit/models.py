"""The append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field


class AuditEvent(SQLModel, table=True):
    """One access to patient data, log-in, export or refusal. Never a clinical value or a token.

    ``seq``, ``prev_hash`` and ``hash`` are filled when the event is sealed into its organization's
    chain (shortly after it is written), so requests never queue on a per-organization lock.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "seq"),
        sa.Index("ix_audit_event_organization_id_id", "organization_id", "id"),  # the log's pages
        # Only the events waiting to be sealed, in the order the sealer chains them. Partial, so it
        # stays small however long the log grows, and the sealer never scans sealed rows for them.
        sa.Index("ix_audit_event_unsealed", "organization_id", "at", "id",
                 postgresql_where=sa.text("seq IS NULL"), sqlite_where=sa.text("seq IS NULL")),
    )
    id: str = id_field()
    organization_id: str = Field(max_length=36)  # "" for events with no organization
    seq: int | None = Field(default=None)
    at: datetime = created_at_field()
    actor_type: str | None = Field(default=None, max_length=16)
    actor_id: str | None = Field(default=None, max_length=36, index=True)
    action: str = Field(max_length=16)
    resource_type: str | None = Field(default=None, max_length=32)
    resource_id: str | None = Field(default=None, max_length=36)
    patient_id: str | None = Field(default=None, max_length=36, index=True)
    request_id: str | None = Field(default=None, max_length=128)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    outcome: int
    details: dict = json_field(dict)
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditChain(SQLModel, table=True):
    """The head of an organization's chain: the last sealed sequence number and hash."""

    __tablename__ = "audit_chain"
    organization_id: str = Field(primary_key=True, max_length=36)
    seq: int = Field(default=0)
    hash: str = Field(max_length=64)


class IdempotencyRecord(SQLModel, table=True):
    """A completed POST and its response, replayed for the same caller, key and body for 24 hours."""

    __tablename__ = "idempotency_record"
    __table_args__ = (sa.UniqueConstraint("principal", "key"),)
    id: str = id_field()
    principal: str = Field(max_length=64)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    headers: dict = json_field(dict)
    body: str = Field(sa_type=sa.Text)
    created_at: datetime = created_at_field()
    expires_at: datetime = created_at_field()
