"""Therapy session request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.core.schemas import StrictInput, StrictPatch

Attendance = Literal["attended", "missed", "cancelled"]
Modality = Literal["in_person", "video", "telephone"]
ProblemArea = Literal["grief", "role_dispute", "role_transition", "interpersonal_deficits"]


def _unique_areas(values: list[str] | None) -> list[str] | None:
    return list(dict.fromkeys(values)) if values is not None else None


class SessionCreate(StrictInput):
    """A session to record; attended ones get the next number."""

    held_on: date
    attendance: Attendance
    modality: Modality = "in_person"
    duration_minutes: int | None = Field(default=None, ge=1, le=480)
    problem_areas_addressed: list[ProblemArea] = Field(default_factory=list, max_length=4)
    note: str | None = Field(default=None, max_length=10000)

    _unique = field_validator("problem_areas_addressed")(_unique_areas)


class SessionUpdate(StrictPatch):
    """Changes to a recorded session; held_on and attendance cannot change."""

    not_null = ("modality", "problem_areas_addressed")
    modality: Modality | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=480)
    problem_areas_addressed: list[ProblemArea] | None = Field(default=None, max_length=4)
    note: str | None = Field(default=None, max_length=10000)

    _unique = field_validator("problem_areas_addressed")(_unique_areas)


class SessionPublic(BaseModel):
    """A recorded session with its number (null unless attended) and the phase it was held in."""

    id: str
    course_id: str
    number: int | None
    held_on: date
    attendance: Attendance
    modality: Modality
    duration_minutes: int | None
    problem_areas_addressed: list[ProblemArea]
    note: str | None
    phase: Literal["initial", "middle", "termination"]
    version: int
    created_at: datetime
    updated_at: datetime
