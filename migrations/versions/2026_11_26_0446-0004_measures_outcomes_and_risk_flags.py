"""measures, outcomes and risk flags

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 04:46:32.997549
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('measure',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('course_id', sa.String(length=36), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=True),
    sa.Column('instrument', sa.String(length=16), nullable=False),
    sa.Column('administered_on', sa.Date(), nullable=False),
    sa.Column('items', sa.JSON(), nullable=True),
    sa.Column('total', sa.Numeric(precision=6, scale=2, asdecimal=False), nullable=False),
    sa.Column('severity', sa.String(length=32), nullable=False),
    sa.Column('risk_items', sa.JSON(), nullable=False),
    sa.Column('session_number', sa.Integer(), nullable=True),
    sa.Column('risk_flag_open', sa.Boolean(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.String(length=36), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_measure_course_id_course')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_measure_organization_id_organization')),
    sa.ForeignKeyConstraint(['session_id'], ['therapy_session.id'], name=op.f('fk_measure_session_id_therapy_session'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_measure'))
    )
    with op.batch_alter_table('measure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_measure_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_measure_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_measure_session_id'), ['session_id'], unique=False)

    op.create_table('risk_acknowledgement',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('course_id', sa.String(length=36), nullable=False),
    sa.Column('measure_id', sa.String(length=36), nullable=False),
    sa.Column('note', sa.String(length=2000), nullable=False),
    sa.Column('by_type', sa.String(length=16), nullable=False),
    sa.Column('by_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_risk_acknowledgement_course_id_course')),
    sa.ForeignKeyConstraint(['measure_id'], ['measure.id'], name=op.f('fk_risk_acknowledgement_measure_id_measure')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_risk_acknowledgement_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_acknowledgement'))
    )
    with op.batch_alter_table('risk_acknowledgement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_acknowledgement_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_risk_acknowledgement_measure_id'), ['measure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_risk_acknowledgement_organization_id'), ['organization_id'], unique=False)

    # Measure facts kept on the course row for the advisories; SQLite adds columns in place.
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_measure_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('last_measure_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('last_measure_session_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('first_attended_on', sa.Date(), nullable=True))
    # Courses that already hold sessions: the date of session 1 (no measures existed before this revision).
    op.execute(
        "UPDATE course SET first_attended_on = (SELECT s.held_on FROM therapy_session s "
        "WHERE s.course_id = course.id AND s.number = 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.drop_column('first_attended_on')
        batch_op.drop_column('last_measure_session_number')
        batch_op.drop_column('last_measure_on')
        batch_op.drop_column('first_measure_on')

    with op.batch_alter_table('risk_acknowledgement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_acknowledgement_organization_id'))
        batch_op.drop_index(batch_op.f('ix_risk_acknowledgement_measure_id'))
        batch_op.drop_index(batch_op.f('ix_risk_acknowledgement_course_id'))

    op.drop_table('risk_acknowledgement')
    with op.batch_alter_table('measure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_measure_session_id'))
        batch_op.drop_index(batch_op.f('ix_measure_organization_id'))
        batch_op.drop_index(batch_op.f('ix_measure_course_id'))

    op.drop_table('measure')
