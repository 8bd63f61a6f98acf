"""Therapy sessions (never a bare ``Session``: that is the database's)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field, org_field


class TherapySession(SQLModel, table=True):
    """One appointment of a course; attended ones are numbered 1, 2, ... without gaps."""

    __tablename__ = "therapy_session"
    # The numbering rule in the database: one session per number per course (NULLs repeat freely).
    __table_args__ = (sa.UniqueConstraint("course_id", "number"),)
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    number: int | None = Field(default=None)
    held_on: date
    attendance: str = Field(max_length=16)
    modality: str = Field(default="in_person", max_length=16)
    duration_minutes: int | None = Field(default=None)
    problem_areas_addressed: list[str] = json_field()
    note: str | None = Field(default=None, max_length=10000)
    phase: str = Field(max_length=16)
    # A member's session of a group session (app.groups): attended or missed, numbered as any other.
    group_session_id: str | None = Field(default=None, foreign_key="group_session.id", max_length=36, index=True)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
