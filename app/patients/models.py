"""Patients."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, org_field


class Patient(SQLModel, table=True):
    """A person in IPT care; ``external_id`` is the EHR's id, unique in the organization."""

    __tablename__ = "patient"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "external_id"),
        sa.Index("ix_patient_organization_id_id", "organization_id", "id"),  # keyset pages of one organization
    )
    id: str = id_field()
    organization_id: str = org_field()
    external_id: str | None = Field(default=None, max_length=200)
    display_name: str = Field(max_length=200)
    birth_date: date | None = Field(default=None)
    sex: str = Field(default="unknown", max_length=16)
    created_by: str = Field(max_length=36, index=True)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
