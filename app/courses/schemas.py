"""Course request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.schemas import StrictInput, StrictPatch

ProtocolId = Literal["ipt", "ipt-a", "ipt-b", "ipc", "ipt-m", "group-ipt", "group-ipt-a"]  # group ones: via /v1/groups (G9)
Phase = Literal["initial", "middle", "termination", "completed", "discontinued"]
EndReason = Literal[
    "completed", "patient_withdrew", "lost_to_follow_up", "referred_on", "clinical_deterioration", "moved_away", "other"
]


class CourseCreate(StrictInput):
    """A new course; planned_sessions defaults to the protocol's, started_on to today."""

    patient_id: str = Field(max_length=36)
    therapist_id: str | None = Field(default=None, max_length=36, description="A clinician; defaults to the calling clinician.")
    protocol: ProtocolId
    planned_sessions: int | None = Field(default=None, description="Default: the protocol's; its range is checked by rule S1.")
    started_on: date | None = None
    diagnosis: str | None = Field(default=None, max_length=500)


class CourseUpdate(StrictPatch):
    """Changes to a course's contract, therapist or diagnosis."""

    not_null = ("planned_sessions", "therapist_id")
    planned_sessions: int | None = None
    therapist_id: str | None = Field(default=None, max_length=36)
    diagnosis: str | None = Field(default=None, max_length=500)


class AdvisoryOut(BaseModel):
    """A hint for the clinician's screen (rules.md, Advisories)."""

    code: str
    message: str


class CoursePublic(BaseModel):
    """A course with its contract, progress and advisories."""

    id: str
    patient_id: str
    therapist_id: str
    protocol: ProtocolId
    planned_sessions: int
    extension_sessions: int
    session_limit: int
    phase: Phase
    started_on: date
    ended_on: date | None
    end_reason: EndReason | None
    diagnosis: str | None
    sessions_attended: int
    sessions_remaining: int
    risk_flag_open: bool
    advisories: list[AdvisoryOut]
    version: int
    created_at: datetime
    updated_at: datetime


class TransitionCreate(StrictInput):
    """A phase change; discontinuing needs a reason."""

    to: Phase
    reason: Literal["patient_withdrew", "lost_to_follow_up", "referred_on", "clinical_deterioration", "moved_away", "other"] | None = None
    note: str | None = Field(default=None, max_length=2000)


class TransitionPublic(BaseModel):
    """One recorded phase change."""

    id: str
    course_id: str
    from_phase: Phase
    to_phase: Phase
    reason: str | None
    note: str | None
    by_type: Literal["user", "integration"]
    by_id: str
    at: datetime


class ExtensionCreate(StrictInput):
    """More sessions for the contract, with the reason agreed."""

    sessions: int = Field(ge=1, le=36)
    reason: str = Field(min_length=1, max_length=2000)


class ExtensionPublic(BaseModel):
    """One approved extension."""

    id: str
    course_id: str
    sessions: int
    reason: str
    by_type: Literal["user", "integration"]
    by_id: str
    created_at: datetime


class ProtocolPublic(BaseModel):
    """A protocol of the catalogue (domain.md, Protocols)."""

    id: ProtocolId
    name: str
    description: str
    planned_min: int
    planned_max: int
    default_planned: int
    initial_max: int
    termination_min: int
    extension_max: int
