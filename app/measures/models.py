"""Outcome measures recorded in a course, and the acknowledgements that close their risk flags."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field, org_field, timestamp_field


class Measure(SQLModel, table=True):
    """One administration of an instrument, scored by the service (never by the caller).

    `session_number` is the time axis for trajectories and research: the number of the linked
    attended session, else the count of attended sessions held on or before `administered_on`
    (0 for a baseline taken before session 1). It is kept current as sessions are recorded.
    """

    __tablename__ = "measure"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    # A deleted session unlinks its measures rather than taking clinical data with it.
    session_id: str | None = Field(default=None, foreign_key="therapy_session.id", ondelete="SET NULL",
                                   max_length=36, index=True)
    instrument: str = Field(max_length=16)
    administered_on: date
    items: list[int] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    total: float = Field(sa_type=sa.Numeric(6, 2, asdecimal=False), nullable=False)
    severity: str = Field(max_length=32)
    risk_items: list[int] = json_field()
    session_number: int | None = Field(default=None)
    risk_flag_open: bool = Field(default=False)
    acknowledged_at: datetime | None = timestamp_field()
    acknowledged_by_id: str | None = Field(default=None, max_length=36)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    created_by: str = Field(max_length=36)


class RiskAcknowledgement(SQLModel, table=True):
    """A clinician's review of a positive risk item: who, when, and what they noted."""

    __tablename__ = "risk_acknowledgement"
    id: str = id_field()
    organization_id: str = org_field()
    course_id: str = Field(foreign_key="course.id", max_length=36, index=True)
    measure_id: str = Field(foreign_key="measure.id", max_length=36, index=True)
    note: str = Field(max_length=2000)
    by_type: str = Field(max_length=16)
    by_id: str = Field(max_length=36)
    at: datetime = created_at_field()
    version: int = Field(default=1)  # never changes: acknowledgements are append-only; it gives the ETag
