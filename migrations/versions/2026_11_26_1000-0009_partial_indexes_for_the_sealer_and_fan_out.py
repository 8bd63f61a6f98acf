"""partial indexes for the sealer and the fan-out

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 10:00:00

The audit sealer and the webhook fan-out look for rows not yet handled (`seq IS NULL`,
`dispatched_at IS NULL`). Full indexes on (seq, id) and (dispatched_at, id) kept an entry for
every version of every row, so each pass walked the dead versions its own updates had left
behind until VACUUM ran: the bench measured the sealer's search growing to 160 ms per pass.
Partial indexes hold only the rows still waiting, in the order they are handled; an index scan
marks the entries of rows since handled as dead, and PostgreSQL drops them from the page.

The audit log's pages read one organization's events in id order: (organization_id, id)
replaces the index on organization_id alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_UNSEALED = sa.text("seq IS NULL")
_PENDING = sa.text("dispatched_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_unsealed')
        batch_op.drop_index('ix_audit_event_organization_id')
        batch_op.create_index('ix_audit_event_organization_id_id', ['organization_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_event_unsealed', ['organization_id', 'at', 'id'], unique=False,
                              postgresql_where=_UNSEALED, sqlite_where=_UNSEALED)
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_pending')
        batch_op.create_index('ix_outbox_event_pending', ['id'], unique=False,
                              postgresql_where=_PENDING, sqlite_where=_PENDING)


def downgrade() -> None:
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_pending')
        batch_op.create_index('ix_outbox_event_pending', ['dispatched_at', 'id'], unique=False)
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_unsealed')
        batch_op.drop_index('ix_audit_event_organization_id_id')
        batch_op.create_index('ix_audit_event_organization_id', ['organization_id'], unique=False)
        batch_op.create_index('ix_audit_event_unsealed', ['seq', 'id'], unique=False)
