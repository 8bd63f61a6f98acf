"""audit seals in a table of their own

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 18:00:00

Sealing used to fill seq, prev_hash and hash of each event: an UPDATE that rewrote the whole row
and, as seq is indexed, added an entry to each of its five indexes (1,000 events: 52 ms of the
database's time and 1.7 MB of WAL, measured). Each event's place in the chain is now a narrow
`audit_seal` row (1,000: 9 ms and 0.5 MB), and an event is never changed after it is written.

The sealer takes events in (tx, id) order, after its chain head's (`audit_chain.position`,
`event_id`). `audit_event.tx` is filled by the database: on PostgreSQL the writing transaction's
id (the column's default; the sealer takes only events of transactions that have all ended), on
SQLite the rowid (a trigger; writers take turns there, so rowid order is commit order). A later
revision that rebuilds audit_event on SQLite (batch mode) must create the trigger again.

Existing data: seals move to `audit_seal`; the sealed events keep a null tx (never read by the
sealer again), those still waiting get tx 0 on PostgreSQL and their rowid on SQLite, so they are
chained after the sealed ones. PostgreSQL's triggers now refuse any UPDATE, DELETE or TRUNCATE of
events and seals.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_UNSEALED = sa.text("seq IS NULL")
_TX_DEFAULT = "ALTER TABLE audit_event ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint)"

# Both tables refuse UPDATE, DELETE (per row) and TRUNCATE, through one function.
_APPEND_ONLY_TABLES = ("audit_event", "audit_seal")
APPEND_ONLY = """
CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
""" + "".join(f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
""" for table in _APPEND_ONLY_TABLES)
DROP_APPEND_ONLY = "".join(f"""DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
""" for table in _APPEND_ONLY_TABLES) + "DROP FUNCTION IF EXISTS audit_append_only();\n"

# Revision 0003's trigger, as it was: sealing could fill seq, prev_hash and hash once. Copied, not
# imported: a migration's downgrade must not change when another migration's file does.
SEALING_APPEND_ONLY = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL AND
     (NEW.id, NEW.organization_id, NEW.at, NEW.actor_type, NEW.actor_id, NEW.action, NEW.resource_type,
      NEW.resource_id, NEW.patient_id, NEW.request_id, NEW.ip, NEW.user_agent, NEW.outcome, NEW.details::text)
     IS NOT DISTINCT FROM
     (OLD.id, OLD.organization_id, OLD.at, OLD.actor_type, OLD.actor_id, OLD.action, OLD.resource_type,
      OLD.resource_id, OLD.patient_id, OLD.request_id, OLD.ip, OLD.user_agent, OLD.outcome, OLD.details::text)
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""
DROP_SEALING_APPEND_ONLY = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event;
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""

SQLITE_TX = """
CREATE TRIGGER audit_event_tx AFTER INSERT ON audit_event WHEN NEW.tx IS NULL
BEGIN
  UPDATE audit_event SET tx = NEW.rowid WHERE rowid = NEW.rowid;
END
"""
_WAITING_GET_TX = "UPDATE audit_event SET tx = {} WHERE NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.event_id = audit_event.id)"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(DROP_SEALING_APPEND_ONLY)
    op.create_table('audit_seal',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_audit_seal')),
    sa.UniqueConstraint('organization_id', 'seq', name=op.f('uq_audit_seal_organization_id_seq'))
    )
    op.execute("INSERT INTO audit_seal (event_id, organization_id, seq, prev_hash, hash) "
               "SELECT id, organization_id, seq, prev_hash, hash FROM audit_event WHERE seq IS NOT NULL")
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), nullable=False, server_default='-1'))
        batch_op.add_column(sa.Column('event_id', sa.String(length=36), nullable=False, server_default=''))
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tx', sa.BigInteger(), nullable=True))
    if postgres:
        op.execute(_TX_DEFAULT)  # new rows only: no rewrite of the table
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_unsealed')
        batch_op.drop_constraint('uq_audit_event_organization_id_seq', type_='unique')
        batch_op.drop_column('seq')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('hash')
        batch_op.create_index('ix_audit_event_organization_id_tx_id', ['organization_id', 'tx', 'id'], unique=False)
    # After the rebuild above, which renumbers SQLite's rowids.
    op.execute(_WAITING_GET_TX.format("0" if postgres else "rowid"))
    op.execute(APPEND_ONLY if postgres else SQLITE_TX)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(DROP_APPEND_ONLY if postgres else "DROP TRIGGER IF EXISTS audit_event_tx")
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_organization_id_tx_id')
        batch_op.drop_column('tx')
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    for column in ("seq", "prev_hash", "hash"):
        op.execute(f"UPDATE audit_event SET {column} = "
                   f"(SELECT s.{column} FROM audit_seal s WHERE s.event_id = audit_event.id)")
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_audit_event_organization_id_seq', ['organization_id', 'seq'])
        batch_op.create_index('ix_audit_event_unsealed', ['organization_id', 'at', 'id'], unique=False,
                              postgresql_where=_UNSEALED, sqlite_where=_UNSEALED)
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.drop_column('event_id')
        batch_op.drop_column('position')
    op.drop_table('audit_seal')
    if postgres:
        op.execute(SEALING_APPEND_ONLY)
