"""Formulation, inventory and timeline request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.schemas import StrictInput, StrictPatch
from app.sessions.schemas import ProblemArea

Relationship = Literal["partner", "parent", "child", "sibling", "other_family", "friend", "colleague", "other"]
MoodChange = Literal["much_worse", "worse", "unchanged", "better", "much_better"]


class GriefDetails(StrictInput):
    """Grief: who died (the relationship, not a name) and when."""

    deceased_relationship: str | None = Field(default=None, max_length=100)
    died_on: date | None = None


class RoleDisputeDetails(StrictInput):
    """Role dispute: with whom, and the stage the dispute is in."""

    with_whom: str | None = Field(default=None, max_length=100)
    stage: Literal["renegotiation", "impasse", "dissolution"] | None = None


class RoleTransitionDetails(StrictInput):
    """Role transition: the old role, the new one, and when it changed."""

    old_role: str | None = Field(default=None, max_length=200)
    new_role: str | None = Field(default=None, max_length=200)
    occurred_on: date | None = None


class DeficitsDetails(StrictInput):
    """Interpersonal deficits: nothing further is required (the area of last resort)."""


DETAILS = {
    "grief": GriefDetails,
    "role_dispute": RoleDisputeDetails,
    "role_transition": RoleTransitionDetails,
    "interpersonal_deficits": DeficitsDetails,
}


class Goal(StrictInput):
    """A goal for a problem area; ``id`` is assigned when omitted."""

    id: str | None = Field(default=None, max_length=36)
    text: str = Field(min_length=1, max_length=1000)
    status: Literal["active", "achieved", "dropped"] = "active"


class ProblemAreaIn(StrictInput):
    """A problem area of the formulation with its area-specific details and goals."""

    area: ProblemArea
    focal: bool = True
    primary: bool = False
    details: dict = Field(default_factory=dict, description="Per area: grief {deceased_relationship, died_on}; role_dispute {with_whom, stage}; role_transition {old_role, new_role, occurred_on}; interpersonal_deficits {}.")
    goals: list[Goal] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _check_details(self) -> ProblemAreaIn:
        self.details = DETAILS[self.area].model_validate(self.details).model_dump(mode="json", exclude_none=True)
        return self


class FormulationPut(StrictInput):
    """The whole formulation; agreeing it records the date (today when omitted)."""

    diagnosis: str | None = Field(default=None, max_length=500)
    summary: str | None = Field(default=None, max_length=10000)
    status: Literal["draft", "agreed"] = "draft"
    agreed_on: date | None = None
    problem_areas: list[ProblemAreaIn] = Field(default_factory=list, max_length=4)


class GoalOut(BaseModel):
    id: str
    text: str
    status: Literal["active", "achieved", "dropped"]


class ProblemAreaOut(BaseModel):
    area: ProblemArea
    focal: bool
    primary: bool
    details: dict
    goals: list[GoalOut]


class FormulationPublic(BaseModel):
    """The course's formulation."""

    id: str
    course_id: str
    diagnosis: str | None
    summary: str | None
    status: Literal["draft", "agreed"]
    agreed_on: date | None
    problem_areas: list[ProblemAreaOut]
    version: int
    created_at: datetime
    updated_at: datetime


class InventoryCreate(StrictInput):
    """A relationship for the interpersonal inventory; ``label`` is a role or initials, not a name."""

    label: str = Field(min_length=1, max_length=100)
    relationship: Relationship
    ring: int = Field(ge=1, le=3, description="Closeness circle: 1 innermost, 3 outermost.")
    contact_frequency: str | None = Field(default=None, max_length=100)
    positives: str | None = Field(default=None, max_length=4000)
    difficulties: str | None = Field(default=None, max_length=4000)
    expectations: str | None = Field(default=None, max_length=4000)
    changes_wanted: str | None = Field(default=None, max_length=4000)
    linked_problem_area: ProblemArea | None = None


class InventoryUpdate(StrictPatch):
    """Changes to a relationship of the inventory."""

    not_null = ("label", "relationship", "ring")
    label: str | None = Field(default=None, min_length=1, max_length=100)
    relationship: Relationship | None = None
    ring: int | None = Field(default=None, ge=1, le=3)
    contact_frequency: str | None = Field(default=None, max_length=100)
    positives: str | None = Field(default=None, max_length=4000)
    difficulties: str | None = Field(default=None, max_length=4000)
    expectations: str | None = Field(default=None, max_length=4000)
    changes_wanted: str | None = Field(default=None, max_length=4000)
    linked_problem_area: ProblemArea | None = None


class InventoryPublic(InventoryCreate):
    """A relationship of the inventory."""

    model_config = ConfigDict(extra="ignore")
    id: str
    course_id: str
    version: int
    created_at: datetime
    updated_at: datetime


class TimelineCreate(StrictInput):
    """A life event and how mood changed with it."""

    occurred_on: date
    event: str = Field(min_length=1, max_length=2000)
    mood_change: MoodChange


class TimelinePublic(TimelineCreate):
    """A timeline entry."""

    model_config = ConfigDict(extra="ignore")
    id: str
    course_id: str
    version: int
    created_at: datetime
