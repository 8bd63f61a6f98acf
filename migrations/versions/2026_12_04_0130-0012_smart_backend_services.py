"""smart backend services

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 01:30:00

An integration may register a public key set instead of a client secret (SMART Backend
Services, RFC 7523 client assertions): inline (`integration.jwks`) or as a URL the service
fetches (`integration.jwks_url`); such an integration has no secret, so `secret_hash` becomes
nullable. `client_assertion` keeps each accepted assertion's `jti` until it expires, so the
same assertion is refused when it comes back, whichever API process it reaches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration") as batch:
        batch.alter_column("secret_hash", existing_type=sa.String(length=128), nullable=True)
        batch.add_column(sa.Column("jwks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("jwks_url", sa.String(length=2000), nullable=True))
    op.create_table(
        "client_assertion",
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integration.id"],
                                name=op.f("fk_client_assertion_integration_id_integration")),
        sa.PrimaryKeyConstraint("integration_id", "jti", name=op.f("pk_client_assertion")),
    )
    op.create_index(op.f("ix_client_assertion_expires_at"), "client_assertion", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_client_assertion_expires_at"), table_name="client_assertion")
    op.drop_table("client_assertion")
    # Key-set integrations have no secret to fall back on: revoke them rather than invent one.
    op.execute("UPDATE integration SET secret_hash = '' WHERE secret_hash IS NULL")
    with op.batch_alter_table("integration") as batch:
        batch.drop_column("jwks_url")
        batch.drop_column("jwks")
        batch.alter_column("secret_hash", existing_type=sa.String(length=128), nullable=False)
