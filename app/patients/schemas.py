"""Patient request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.core.ids import today
from app.core.schemas import StrictInput, StrictPatch

Sex = Literal["female", "male", "other", "unknown"]


def _not_future(value: date | None) -> date | None:
    if value is not None and (value > today() or value.year < 1890):
        raise ValueError("birth_date must be a past date after 1890")
    return value


class PatientCreate(StrictInput):
    """A new patient."""

    external_id: str | None = Field(default=None, min_length=1, max_length=200, description="The EHR's id, unique in the organization.")
    display_name: str = Field(min_length=1, max_length=200)
    birth_date: date | None = None
    sex: Sex = "unknown"

    _check_birth = field_validator("birth_date")(_not_future)


class PatientUpdate(StrictPatch):
    """Changes to a patient; only the fields sent are changed."""

    not_null = ("display_name", "sex")

    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    birth_date: date | None = None
    sex: Sex | None = None

    _check_birth = field_validator("birth_date")(_not_future)


class PatientPublic(BaseModel):
    """A patient as the API returns it."""

    id: str
    organization_id: str
    external_id: str | None
    display_name: str
    birth_date: date | None
    sex: Sex
    version: int
    created_at: datetime
    updated_at: datetime
