"""The append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field


class AuditEvent(SQLModel, table=True):
    """One access to patient data, log-in, export or refusal. Never a clinical value or a token.

    Written once and never changed: its place in its organization's hash chain is an ``AuditSeal``,
    added shortly after by the sealer, so requests never queue on a per-organization lock and
    sealing rewrites no event (an UPDATE of each event cost five times the database work).
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_organization_id_id", "organization_id", "id"),  # the log's pages
        sa.Index("ix_audit_event_organization_id_tx_id", "organization_id", "tx", "id"),  # the sealer's order
    )
    id: str = id_field()
    organization_id: str = Field(max_length=36)  # "" for events with no organization
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
    # Where the event stands in commit order, filled by the database, never by the app (migration
    # 0010): on PostgreSQL the writing transaction's id (the column's default), on SQLite the rowid
    # (a trigger; writers take turns there, so rowid order is commit order). The sealer takes events
    # in (tx, id) order, on PostgreSQL only of transactions that have all ended, so none is skipped
    # for committing late. Null for events sealed before 0010.
    tx: int | None = Field(default=None, sa_type=sa.BigInteger)


class AuditSeal(SQLModel, table=True):
    """An event's place in its organization's chain, written once by the sealer and never changed."""

    __tablename__ = "audit_seal"
    __table_args__ = (sa.UniqueConstraint("organization_id", "seq"),)
    event_id: str = Field(primary_key=True, max_length=36)
    organization_id: str = Field(max_length=36)
    seq: int
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditChain(SQLModel, table=True):
    """The head of an organization's chain: the last sealed sequence number, hash, and (tx, id) of the event.

    Sealing resumes after (``position``, ``event_id``) in the sealer's (tx, id) order: every event
    up to it is sealed ((-1, ""): none yet).
    """

    __tablename__ = "audit_chain"
    organization_id: str = Field(primary_key=True, max_length=36)
    seq: int = Field(default=0)
    hash: str = Field(max_length=64)
    position: int = Field(default=-1, sa_type=sa.BigInteger)
    event_id: str = Field(default="", max_length=36)


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
