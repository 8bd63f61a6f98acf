"""keyset list indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:00:00

Lists page by id within an organization (or a clinician's caseload). With only an index on
organization_id, PostgreSQL's generic plan walked the primary key and skipped other tenants'
rows: a page of a small organization cost ~12 ms of database time in a table of a million
courses. With (organization_id, id) a page reads its own rows only.
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.create_index('ix_course_organization_id_id', ['organization_id', 'id'], unique=False)
        batch_op.create_index('ix_course_therapist_id_id', ['therapist_id', 'id'], unique=False)
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index('ix_patient_organization_id_id', ['organization_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_organization_id_id')
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.drop_index('ix_course_therapist_id_id')
        batch_op.drop_index('ix_course_organization_id_id')
