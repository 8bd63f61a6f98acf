"""A group IPT group, its facilitators, its members and its group sessions."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, org_field


class IptGroup(SQLModel, table=True):
    """A closed IPT group (``group`` is reserved in SQL): its protocol, contract and how far it has got."""

    __tablename__ = "ipt_group"
    id: str = id_field()
    organization_id: str = org_field()
    name: str = Field(max_length=200)  # a label such as "Tuesday group": never a member's name
    protocol: str = Field(max_length=16)
    planned_sessions: int
    capacity: int
    status: str = Field(default="open", max_length=16)  # open, completed
    sessions_held: int = Field(default=0)
    latest_session_on: date | None = Field(default=None)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class GroupFacilitator(SQLModel, table=True):
    """A clinician who facilitates a group (one or two); the first named leads, and is the members' courses' therapist."""

    __tablename__ = "group_facilitator"
    group_id: str = Field(foreign_key="ipt_group.id", primary_key=True, max_length=36)
    user_id: str = Field(foreign_key="app_user.id", primary_key=True, max_length=36, index=True)
    lead: bool = Field(default=False)


class GroupMember(SQLModel, table=True):
    """A patient in a group, with the course of their own that the group's sessions are recorded in."""

    __tablename__ = "group_member"
    __table_args__ = (sa.UniqueConstraint("group_id", "patient_id"),)
    id: str = id_field()
    organization_id: str = org_field()
    group_id: str = Field(foreign_key="ipt_group.id", max_length=36, index=True)
    patient_id: str = Field(foreign_key="patient.id", max_length=36)
    course_id: str = Field(foreign_key="course.id", max_length=36, unique=True)
    status: str = Field(default="active", max_length=16)  # active, left
    pre_group_meetings: int = Field(default=0)
    last_pre_group_on: date | None = Field(default=None)
    left_on: date | None = Field(default=None)
    left_reason: str | None = Field(default=None, max_length=32)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()


class GroupSession(SQLModel, table=True):
    """One group session, recorded once; each member's attendance is a session of their own course."""

    __tablename__ = "group_session"
    __table_args__ = (sa.UniqueConstraint("group_id", "number"),)  # two facilitators at once: one number, one wins
    id: str = id_field()
    organization_id: str = org_field()
    group_id: str = Field(foreign_key="ipt_group.id", max_length=36, index=True)
    number: int
    held_on: date
    phase: str = Field(max_length=16)
    duration_minutes: int | None = Field(default=None)
    recorded_by: str = Field(max_length=36)
    created_at: datetime = created_at_field()
