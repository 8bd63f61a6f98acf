"""group ipt

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 02:30:00

Group IPT (app.groups): `ipt_group` (`group` is reserved in SQL), its one or two facilitators
(`group_facilitator`, the lead first), its members (`group_member`, each with a course of their
own, in the group protocol) and its sessions (`group_session`, one number per group: of two
facilitators recording the same session at once, one wins). A member's attendance at a group
session is a session of their own course (`therapy_session.group_session_id`), so their
timeline, measures, outcomes, FHIR and research rows keep working as for any course.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ipt_group",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("planned_sessions", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sessions_held", sa.Integer(), nullable=False),
        sa.Column("latest_session_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"], name=op.f("fk_ipt_group_organization_id_organization")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ipt_group")),
    )
    op.create_index(op.f("ix_ipt_group_organization_id"), "ipt_group", ["organization_id"])
    op.create_table(
        "group_facilitator",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("lead", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["ipt_group.id"], name=op.f("fk_group_facilitator_group_id_ipt_group")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_group_facilitator_user_id_app_user")),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_facilitator")),
    )
    op.create_index(op.f("ix_group_facilitator_user_id"), "group_facilitator", ["user_id"])
    op.create_table(
        "group_member",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pre_group_meetings", sa.Integer(), nullable=False),
        sa.Column("last_pre_group_on", sa.Date(), nullable=True),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("left_reason", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["course_id"], ["course.id"], name=op.f("fk_group_member_course_id_course")),
        sa.ForeignKeyConstraint(["group_id"], ["ipt_group.id"], name=op.f("fk_group_member_group_id_ipt_group")),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"], name=op.f("fk_group_member_organization_id_organization")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name=op.f("fk_group_member_patient_id_patient")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_member")),
        sa.UniqueConstraint("course_id", name=op.f("uq_group_member_course_id")),
        sa.UniqueConstraint("group_id", "patient_id", name=op.f("uq_group_member_group_id_patient_id")),
    )
    op.create_index(op.f("ix_group_member_group_id"), "group_member", ["group_id"])
    op.create_index(op.f("ix_group_member_organization_id"), "group_member", ["organization_id"])
    op.create_table(
        "group_session",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("recorded_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["ipt_group.id"], name=op.f("fk_group_session_group_id_ipt_group")),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"], name=op.f("fk_group_session_organization_id_organization")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_session")),
        sa.UniqueConstraint("group_id", "number", name=op.f("uq_group_session_group_id_number")),
    )
    op.create_index(op.f("ix_group_session_group_id"), "group_session", ["group_id"])
    op.create_index(op.f("ix_group_session_organization_id"), "group_session", ["organization_id"])
    with op.batch_alter_table("therapy_session") as batch:
        batch.add_column(sa.Column("group_session_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(op.f("fk_therapy_session_group_session_id_group_session"), "group_session",
                                 ["group_session_id"], ["id"])
        batch.create_index(op.f("ix_therapy_session_group_session_id"), ["group_session_id"])


def downgrade() -> None:
    with op.batch_alter_table("therapy_session") as batch:
        batch.drop_index(op.f("ix_therapy_session_group_session_id"))
        batch.drop_constraint(op.f("fk_therapy_session_group_session_id_group_session"), type_="foreignkey")
        batch.drop_column("group_session_id")
    op.drop_index(op.f("ix_group_session_organization_id"), table_name="group_session")
    op.drop_index(op.f("ix_group_session_group_id"), table_name="group_session")
    op.drop_table("group_session")
    op.drop_index(op.f("ix_group_member_organization_id"), table_name="group_member")
    op.drop_index(op.f("ix_group_member_group_id"), table_name="group_member")
    op.drop_table("group_member")
    op.drop_index(op.f("ix_group_facilitator_user_id"), table_name="group_facilitator")
    op.drop_table("group_facilitator")
    op.drop_index(op.f("ix_ipt_group_organization_id"), table_name="ipt_group")
    op.drop_table("ipt_group")
