"""The append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.ids import utcnow
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
    # Part of the key: on PostgreSQL the log is partitioned by month of ``at`` (migration 0011), and a
    # partitioned table's keys must hold its partition key. SQLite keeps ``id`` alone as its key.
    at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), primary_key=True)
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
    # Not unique: on a partitioned table a unique index must hold the partition key, and (organization,
    # seq, at) would guard nothing. The chain head's row lock keeps seqs unique; verify names a repeat.
    __table_args__ = (sa.Index("ix_audit_seal_organization_id_seq", "organization_id", "seq"),)
    event_id: str = Field(primary_key=True, max_length=36)
    organization_id: str = Field(max_length=36)
    seq: int
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    # The event's own ``at``: seals are partitioned as their events are, so a month detaches whole, and
    # a seal finds its event by (id, at), in one partition.
    at: datetime = Field(sa_type=sa.DateTime(timezone=True), primary_key=True)


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


class AuditArchive(SQLModel, table=True):
    """Where an organization's chain stood when ``ipt audit archive`` took its months out of the live log.

    ``seq`` and ``hash`` are the last archived link: verify starts the live chain after it. ``copies``
    holds {seq: hash} of the live events at or below ``seq`` (sealed before an archived event that
    committed later, but dated in a month still live): they are in the archive file too, and verify
    checks them against these hashes. The newest row of an organization (by id) is the one in force.
    """

    __tablename__ = "audit_archive"
    __table_args__ = (sa.Index("ix_audit_archive_organization_id_id", "organization_id", "id"),)
    id: str = id_field()
    organization_id: str = Field(max_length=36)
    seq: int
    hash: str = Field(max_length=64)
    copies: dict = json_field(dict)
    before: str = Field(max_length=7)  # the archive's --before month, YYYY-MM: every event before it was archived
    file: str = Field(max_length=300)  # the file's name, as given
    sha256: str = Field(max_length=64)  # of the file's content, as its last line says
    archived_at: datetime = created_at_field()

