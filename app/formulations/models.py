"""The formulation, the interpersonal inventory and the life-event timeline of a course."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field, org_field


class Formulation(SQLModel, table=True):
    """The case formulation agreed with the patient: diagnosis, link, problem areas, goals."""

    __tablename__ = "formulation"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, unique=True)
    diagnosis: str | None = Field(default=None, max_length=500)
    summary: str | None = Field(default=None, max_length=10000)
    status: str = Field(default="draft", max_length=16)
    agreed_on: date | None = Field(default=None)
    problem_areas: list[dict] = json_field()
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class InventoryRelationship(SQLModel, table=True):
    """One important relationship in the interpersonal inventory (a label, never a full name)."""

    __tablename__ = "inventory_relationship"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    label: str = Field(max_length=100)
    relationship: str = Field(max_length=16)
    ring: int
    contact_frequency: str | None = Field(default=None, max_length=100)
    positives: str | None = Field(default=None, max_length=4000)
    difficulties: str | None = Field(default=None, max_length=4000)
    expectations: str | None = Field(default=None, max_length=4000)
    changes_wanted: str | None = Field(default=None, max_length=4000)
    linked_problem_area: str | None = Field(default=None, max_length=32)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class TimelineEvent(SQLModel, table=True):
    """A dated life event paired with a change in mood."""

    __tablename__ = "timeline_event"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    occurred_on: date
    event: str = Field(max_length=2000)
    mood_change: str = Field(max_length=16)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
