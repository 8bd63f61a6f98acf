"""Group IPT request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.schemas import StrictInput, StrictPatch

GroupProtocolId = Literal["group-ipt", "group-ipt-a"]
GroupAttendance = Literal["attended", "missed"]
DiscontinueReason = Literal["patient_withdrew", "lost_to_follow_up", "referred_on", "clinical_deterioration",
                            "moved_away", "other"]  # rules.DISCONTINUE_REASONS (P7)


def _distinct(values: list[str] | None) -> list[str] | None:
    return list(dict.fromkeys(values)) if values is not None else None


class GroupCreate(StrictInput):
    """A new closed group: its protocol, contract, capacity and one or two facilitators (the first leads)."""

    name: str = Field(min_length=1, max_length=200, description="A label such as 'Tuesday group', never a member's name.")
    protocol: GroupProtocolId = "group-ipt"
    planned_sessions: int | None = Field(default=None, ge=8, le=16, description="8-16 (G4); the protocol's default if left out.")
    capacity: int = Field(default=8, ge=2, le=12, description="2-12 members (G2).")
    facilitator_ids: list[str] | None = Field(default=None, min_length=1, max_length=2,
                                              description="1-2 active clinicians (G7); the first leads. Left out: the caller.")

    _distinct = field_validator("facilitator_ids")(_distinct)


class GroupUpdate(StrictPatch):
    """Changes to a group; needs If-Match."""

    not_null = ("name", "planned_sessions", "capacity", "facilitator_ids")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    planned_sessions: int | None = Field(default=None, ge=8, le=16)
    capacity: int | None = Field(default=None, ge=2, le=12)
    facilitator_ids: list[str] | None = Field(default=None, min_length=1, max_length=2)

    _distinct = field_validator("facilitator_ids")(_distinct)


class GroupPublic(BaseModel):
    """A group as the API returns it."""

    id: str
    organization_id: str
    name: str
    protocol: GroupProtocolId
    planned_sessions: int
    capacity: int
    facilitator_ids: list[str]
    members: int
    status: Literal["open", "completed"]
    sessions_held: int
    latest_session_on: date | None
    phase: Literal["pre_group", "initial", "middle", "termination", "completed"]
    version: int
    created_at: datetime
    updated_at: datetime


class MemberCreate(StrictInput):
    """A patient joining the group (before group session 1): a course of their own opens in the group protocol."""

    patient_id: str = Field(max_length=36)


class MemberPublic(BaseModel):
    """A member: their course, pre-group meetings, and whether they are still in the group."""

    id: str
    group_id: str
    patient_id: str
    course_id: str
    status: Literal["active", "left"]
    pre_group_meetings: int
    last_pre_group_on: date | None
    left_on: date | None
    left_reason: str | None
    version: int
    created_at: datetime


class PreGroupMeeting(StrictInput):
    """An individual pre-group meeting with a facilitator (G8)."""

    held_on: date


class AttendanceEntry(StrictInput):
    """One member at one group session."""

    member_id: str = Field(max_length=36)
    attendance: GroupAttendance


class GroupSessionCreate(StrictInput):
    """A group session, recorded once: every active member's attendance (members left out count as missed)."""

    held_on: date
    duration_minutes: int | None = Field(default=None, ge=1, le=480)
    attendance: list[AttendanceEntry] = Field(default_factory=list, max_length=12)


class GroupSessionPublic(BaseModel):
    """A recorded group session and who attended."""

    id: str
    group_id: str
    number: int
    held_on: date
    phase: Literal["initial", "middle", "termination"]
    duration_minutes: int | None
    attendance: list[AttendanceEntry]
    created_at: datetime


class InstrumentRates(BaseModel):
    """A group's response and remission rates on one instrument (members measured at least once)."""

    instrument: str
    members_measured: int
    response_rate: float | None
    remission_rate: float | None


class MemberOutcome(BaseModel):
    """One member's outcome: by ids to whoever reads their course, else by a pseudonym (``member``)."""

    model_config = ConfigDict(extra="allow")
    member_id: str | None = None
    patient_id: str | None = None
    course_id: str | None = None
    member: str | None = None
    status: Literal["active", "left"]
    completed: bool
    sessions_attended: int
    group_sessions: int
    outcomes: list[dict[str, Any]]


class GroupOutcomes(BaseModel):
    """A group's outcomes."""

    group_id: str
    protocol: GroupProtocolId
    sessions_held: int
    members: int
    active: int
    left: int
    completers: int
    attendance_rate: float | None
    instruments: list[InstrumentRates]
    per_member: list[MemberOutcome]
