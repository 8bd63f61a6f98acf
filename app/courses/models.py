"""Courses of IPT, their phase transitions and their extensions."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, org_field


class Course(SQLModel, table=True):
    """One patient's contracted run of IPT with one therapist.

    The attended counters are kept on the row, updated under the row lock with each session, so
    the rules read one row instead of counting sessions on every request.
    """

    __tablename__ = "course"
    __table_args__ = (
        # S8 in the database: at most one open course per patient.
        sa.Index(
            "uq_course_patient_id_open",
            "patient_id",
            unique=True,
            postgresql_where=sa.text("ended_on IS NULL"),
            sqlite_where=sa.text("ended_on IS NULL"),
        ),
        # Keyset pages (WHERE organization_id / therapist_id ... ORDER BY id) read only their own rows.
        sa.Index("ix_course_organization_id_id", "organization_id", "id"),
        sa.Index("ix_course_therapist_id_id", "therapist_id", "id"),
    )
    id: str = id_field()
    organization_id: str = org_field()
    patient_id: str = Field(foreign_key="patient.id", max_length=36, index=True)
    therapist_id: str = Field(foreign_key="app_user.id", max_length=36, index=True)
    protocol: str = Field(max_length=16)
    planned_sessions: int
    extension_sessions: int = Field(default=0)
    phase: str = Field(default="initial", max_length=16)
    started_on: date
    ended_on: date | None = Field(default=None)
    end_reason: str | None = Field(default=None, max_length=32)
    diagnosis: str | None = Field(default=None, max_length=500)
    sessions_attended: int = Field(default=0)
    attended_in_phase: int = Field(default=0)
    latest_session_on: date | None = Field(default=None)
    risk_flag_open: bool = Field(default=False)
    # Measure facts kept on the row (under its lock) so every course response carries the measure
    # advisories without another query.
    first_measure_on: date | None = Field(default=None)
    last_measure_on: date | None = Field(default=None)
    last_measure_session_number: int | None = Field(default=None)
    first_attended_on: date | None = Field(default=None)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class CourseTransition(SQLModel, table=True):
    """One recorded phase change: from, to, when, by whom, and why."""

    __tablename__ = "course_transition"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    from_phase: str = Field(max_length=16)
    to_phase: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=2000)
    by_type: str = Field(max_length=16)
    by_id: str = Field(max_length=36)
    at: datetime = created_at_field()


class CourseExtension(SQLModel, table=True):
    """An approved renegotiation of the contract: more sessions, with a reason."""

    __tablename__ = "course_extension"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    sessions: int
    reason: str = Field(max_length=2000)
    by_type: str = Field(max_length=16)
    by_id: str = Field(max_length=36)
    created_at: datetime = created_at_field()
