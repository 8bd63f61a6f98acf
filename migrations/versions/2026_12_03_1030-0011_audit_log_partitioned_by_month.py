"""audit log partitioned by month; archived chain heads

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:30:00

PostgreSQL: `audit_event` and `audit_seal` become tables partitioned by RANGE of the event's `at`,
one partition a calendar month (UTC) in the schema `audit_partitions`, so a month of the log (its
events and their seals) can be archived and detached whole. Seals gain the event's `at` (their
partition key, and half of the key that finds their event). Primary keys hold the partition key:
(id, at) and (event_id, at); (organization_id, seq) of seals is a plain index (a unique one would have
to hold `at`, and would then guard nothing). The rows are copied into the new tables, so every chain
verifies as before. Partitions are made for every month that has events, the current month and
three ahead (the sealer's housekeeping keeps three ahead from then on), plus a DEFAULT partition
that catches what no month takes (see the README: a missing month must never fail a request).
The append-only triggers are made again: row triggers on the partitioned tables reach every
partition, TRUNCATE triggers do not, so each partition gets its own.

SQLite has no partitions: seals gain `at` too (same model, same queries), events keep `id` alone
as their key (rebuilding audit_event would renumber the rowids its `tx` comes from).

Both: `audit_archive` records where each chain stood when `ipt audit archive` took months out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

SCHEMA = "audit_partitions"
TABLES = ("audit_event", "audit_seal")
MONTHS_AHEAD = 3

# 0010's triggers (the function audit_append_only() stays: the new triggers call it too).
DROP_TRIGGERS = "".join(f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t};\nDROP TRIGGER IF EXISTS {t}_append_only ON {t};\n"
                        for t in TABLES)
TRIGGERS = "".join(f"""CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t}
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
""" for t in TABLES)
# Copied by app/audit/partitions.py for the months made later, not imported from it: a migration
# must not change when the app does.
PARTITION_TRUNCATE = ("CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {name} "
                      "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")


def _month_after(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _partitions(table: str, months: set[tuple[int, int]]) -> list[str]:
    """DDL of one partition a month (with its TRUNCATE trigger) and the DEFAULT partition of ``table``."""
    statements = []
    for year, month in sorted(months):
        name = f"{SCHEMA}.{table}_{year:04d}_{month:02d}"
        upper = _month_after(year, month)
        statements.append(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES "
                          f"FROM ('{year:04d}-{month:02d}-01 00:00:00+00') TO ('{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00')")
        statements.append(PARTITION_TRUNCATE.format(name=name))
    statements.append(f"CREATE TABLE {SCHEMA}.{table}_default PARTITION OF {table} DEFAULT")
    statements.append(PARTITION_TRUNCATE.format(name=f"{SCHEMA}.{table}_default"))
    return statements


def _months_to_make(bind: sa.Connection) -> set[tuple[int, int]]:
    """Every month (UTC) that has events, and the current month with three after it."""
    rows = bind.execute(sa.text(
        "SELECT DISTINCT extract(year FROM at AT TIME ZONE 'UTC')::int, extract(month FROM at AT TIME ZONE 'UTC')::int "
        "FROM audit_event_0010")).all()
    year, month = bind.execute(sa.text(
        "SELECT extract(year FROM now() AT TIME ZONE 'UTC')::int, extract(month FROM now() AT TIME ZONE 'UTC')::int")).one()
    months = {(y, m) for y, m in rows}
    for _ in range(MONTHS_AHEAD + 1):
        months.add((year, month))
        year, month = _month_after(year, month)
    return months


PG_INDEXES = """
ALTER TABLE audit_event ADD CONSTRAINT pk_audit_event PRIMARY KEY (id, at);
CREATE INDEX ix_audit_event_actor_id ON audit_event (actor_id);
CREATE INDEX ix_audit_event_patient_id ON audit_event (patient_id);
CREATE INDEX ix_audit_event_organization_id_id ON audit_event (organization_id, id);
CREATE INDEX ix_audit_event_organization_id_tx_id ON audit_event (organization_id, tx, id);
ALTER TABLE audit_seal ADD CONSTRAINT pk_audit_seal PRIMARY KEY (event_id, at);
CREATE INDEX ix_audit_seal_organization_id_seq ON audit_seal (organization_id, seq);
"""
PG_INDEXES_0010 = """
ALTER TABLE audit_event ADD CONSTRAINT pk_audit_event PRIMARY KEY (id);
CREATE INDEX ix_audit_event_actor_id ON audit_event (actor_id);
CREATE INDEX ix_audit_event_patient_id ON audit_event (patient_id);
CREATE INDEX ix_audit_event_organization_id_id ON audit_event (organization_id, id);
CREATE INDEX ix_audit_event_organization_id_tx_id ON audit_event (organization_id, tx, id);
ALTER TABLE audit_seal ADD CONSTRAINT pk_audit_seal PRIMARY KEY (event_id);
ALTER TABLE audit_seal ADD CONSTRAINT uq_audit_seal_organization_id_seq UNIQUE (organization_id, seq);
"""


def _create_archive_table() -> None:
    op.create_table('audit_archive',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('copies', sa.JSON(), nullable=False),
    sa.Column('before', sa.String(length=7), nullable=False),
    sa.Column('file', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_archive'))
    )
    with op.batch_alter_table('audit_archive', schema=None) as batch_op:
        batch_op.create_index('ix_audit_archive_organization_id_id', ['organization_id', 'id'], unique=False)


def upgrade() -> None:
    bind = op.get_bind()
    _create_archive_table()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table('audit_seal', schema=None) as batch_op:
            batch_op.add_column(sa.Column('at', sa.DateTime(timezone=True), nullable=True))
        op.execute("UPDATE audit_seal SET at = (SELECT e.at FROM audit_event e WHERE e.id = audit_seal.event_id)")
        op.execute("DELETE FROM audit_seal WHERE at IS NULL")  # a seal whose event is gone: verify found neither
        with op.batch_alter_table('audit_seal', schema=None) as batch_op:
            batch_op.alter_column('at', existing_type=sa.DateTime(timezone=True), nullable=False)
            batch_op.drop_constraint('uq_audit_seal_organization_id_seq', type_='unique')
            batch_op.create_index('ix_audit_seal_organization_id_seq', ['organization_id', 'seq'], unique=False)
        return
    op.execute(DROP_TRIGGERS)
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_0010")
    # LIKE copies the columns as they are (types, NOT NULL, the tx default).
    op.execute("CREATE TABLE audit_event (LIKE audit_event_0010 INCLUDING DEFAULTS) PARTITION BY RANGE (at)")
    op.execute("CREATE TABLE audit_seal (LIKE audit_seal_0010 INCLUDING DEFAULTS, at timestamptz NOT NULL) "
               "PARTITION BY RANGE (at)")
    months = _months_to_make(bind)
    for table in TABLES:
        for statement in _partitions(table, months):
            op.execute(statement)
    op.execute("INSERT INTO audit_event SELECT * FROM audit_event_0010")
    # A seal whose event is gone (deleted behind the triggers) is left behind: verify's join never found it.
    op.execute("INSERT INTO audit_seal SELECT s.*, e.at FROM audit_seal_0010 s JOIN audit_event_0010 e ON e.id = s.event_id")
    for table in TABLES:
        op.execute(f"DROP TABLE {table}_0010")
    op.execute(PG_INDEXES)  # after the copy: one index build each, not row by row
    op.execute(TRIGGERS)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM audit_archive")).scalar():
        # Without the archived heads, 0010's verify would start every archived chain at genesis and call it broken.
        raise RuntimeError("audit_archive records archived months: downgrading below 0011 would make their chains "
                           "unverifiable; restore the archived events first")
    op.drop_table('audit_archive')
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table('audit_seal', schema=None) as batch_op:
            batch_op.drop_index('ix_audit_seal_organization_id_seq')
            batch_op.create_unique_constraint('uq_audit_seal_organization_id_seq', ['organization_id', 'seq'])
            batch_op.drop_column('at')
        return
    op.execute(DROP_TRIGGERS)
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_0011")
    op.execute("CREATE TABLE audit_event (LIKE audit_event_0011 INCLUDING DEFAULTS)")
    op.execute("INSERT INTO audit_event SELECT * FROM audit_event_0011")
    op.execute("CREATE TABLE audit_seal (LIKE audit_seal_0011 INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE audit_seal DROP COLUMN at")
    op.execute("INSERT INTO audit_seal SELECT event_id, organization_id, seq, prev_hash, hash FROM audit_seal_0011")
    for table in TABLES:
        op.execute(f"DROP TABLE {table}_0011")  # and its partitions
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA}")
    op.execute(PG_INDEXES_0010)
    op.execute(TRIGGERS)
