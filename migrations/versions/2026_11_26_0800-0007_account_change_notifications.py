"""account change notifications

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 08:00:00

On PostgreSQL, any change to a user or an integration (deactivation, roles, revocation, ...)
NOTIFYs channel ipt_account_changed on commit, so every API process drops its cached
copy of that account (app.identity.accounts). SQLite needs nothing: there accounts are not cached.
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION account_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ipt_account_changed', TG_ARGV[0] || ':' || OLD.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER app_user_changed AFTER UPDATE OR DELETE ON app_user
    FOR EACH ROW EXECUTE FUNCTION account_changed('user');
CREATE TRIGGER integration_changed AFTER UPDATE OR DELETE ON integration
    FOR EACH ROW EXECUTE FUNCTION account_changed('integration');
"""
DOWNGRADE = """
DROP TRIGGER IF EXISTS integration_changed ON integration;
DROP TRIGGER IF EXISTS app_user_changed ON app_user;
DROP FUNCTION IF EXISTS account_changed();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DOWNGRADE)
