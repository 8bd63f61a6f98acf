"""bulk data export jobs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 02:00:00

FHIR Bulk Data `$export` jobs (`bulk_export`) and their NDJSON files (`bulk_export_file`), kept in
the database so that every API process, on any host, can answer a job's status and serve its
files, and a worker killed mid-job resumes from the job's saved position. A file's content is one
gzip member (the worker compresses it); on PostgreSQL its column is stored EXTERNAL, so the server
does not try to compress it again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

UNCOMPRESSED = "ALTER TABLE bulk_export_file ALTER COLUMN content SET STORAGE EXTERNAL"


def upgrade() -> None:
    op.create_table(
        "bulk_export",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("requested_by_type", sa.String(length=16), nullable=False),
        sa.Column("requested_by_id", sa.String(length=36), nullable=False),
        sa.Column("whole_organization", sa.Boolean(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=True),
        sa.Column("types", sa.JSON(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_url", sa.String(length=2000), nullable=False),
        sa.Column("transaction_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("position", sa.JSON(), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"],
                                name=op.f("fk_bulk_export_organization_id_organization")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_export")),
    )
    op.create_index(op.f("ix_bulk_export_organization_id"), "bulk_export", ["organization_id"])
    op.create_index(op.f("ix_bulk_export_status"), "bulk_export", ["status"])
    op.create_table(
        "bulk_export_file",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("export_id", sa.String(length=36), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["export_id"], ["bulk_export.id"], name=op.f("fk_bulk_export_file_export_id_bulk_export"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_export_file")),
    )
    op.create_index(op.f("ix_bulk_export_file_export_id"), "bulk_export_file", ["export_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UNCOMPRESSED)


def downgrade() -> None:
    op.drop_index(op.f("ix_bulk_export_file_export_id"), table_name="bulk_export_file")
    op.drop_table("bulk_export_file")
    op.drop_index(op.f("ix_bulk_export_status"), table_name="bulk_export")
    op.drop_index(op.f("ix_bulk_export_organization_id"), table_name="bulk_export")
    op.drop_table("bulk_export")
