"""bulk data partial manifests

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 04:00:00

A Bulk Data kick-off may ask for `allowPartialManifests` (Bulk Data 3.0): the client then gets
manifests of the files already written while the export runs. `bulk_export.partial_manifests`
keeps the choice; `bulk_export_file.manifest_page` is the manifest a file was first listed in, so
a manifest, once returned, lists the same files every time it is asked for again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_export") as batch:
        batch.add_column(sa.Column("partial_manifests", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("bulk_export_file") as batch:
        batch.add_column(sa.Column("manifest_page", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_export_file") as batch:
        batch.drop_column("manifest_page")
    with op.batch_alter_table("bulk_export") as batch:
        batch.drop_column("partial_manifests")
