"""Instrument catalogue, measure, outcome and risk-acknowledgement bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.core.schemas import StrictInput
from app.instruments import INSTRUMENTS

InstrumentId = Literal[tuple(INSTRUMENTS)]  # type: ignore[valid-type]  # the catalogue's ids, in its order
ReliableChange = Literal["improved", "unchanged", "deteriorated"]
Number = int | float


class BandPublic(BaseModel):
    """A severity band: totals from low to high (inclusive) are reported as code."""

    code: str
    label: str
    low: Number
    high: Number


class InstrumentPublic(BaseModel):
    """An instrument of the catalogue (domain.md, Outcome measures)."""

    id: InstrumentId
    name: str
    version: str
    description: str
    item_count: int
    item_ranges: list[list[int]]
    total_only: bool
    total_min: Number
    total_max: Number
    scoring: Literal["sum", "qids_sr16", "mean"]
    bands: list[BandPublic]
    risk_items: list[int]
    caseness: Number | None
    reliable_change: Number | None
    reliable_change_source: str
    remission_below: Number | None
    remission_rule: str
    higher_is_better: bool
    loinc_panel: str | None
    loinc_total: str | None
    licence: str
    clinician_rated: bool
    reliable_change_sd: float | None
    reliable_change_r: float | None
    loinc_items: list[str] = Field(description="The LOINC code of each item, item 1 first; empty where none is used.")


class MeasureCreate(StrictInput):
    """One administration: item responses, or the total for a total-only instrument (BDI-II).

    `items` and `total` are taken as raw JSON so that 1.0, true or "2" are refused by the scorer
    (naming the item) instead of being quietly converted.
    """

    instrument: InstrumentId
    administered_on: date
    items: list[Any] | None = Field(
        default=None, max_length=64, description="Whole-number responses, item 1 first (not for BDI-II)."
    )
    total: Any = Field(default=None, description="Only for total-only instruments (BDI-II): the whole-number total.")
    session_id: str | None = Field(default=None, max_length=36, description="A session of this course.")


class MeasurePublic(BaseModel):
    """A stored, scored administration with its change from the course's baseline of the instrument."""

    id: str
    course_id: str
    session_id: str | None
    instrument: InstrumentId
    administered_on: date
    items: list[int] | None
    total: Number
    severity: str
    risk_items: list[int] = Field(description="1-based numbers of positive risk items.")
    session_number: int | None = Field(description="The session it belongs to; 0 before session 1.")
    risk_flag_open: bool
    acknowledged_at: datetime | None
    acknowledged_by_id: str | None
    change_from_baseline: Number
    reliable_change: ReliableChange | None = Field(description="Null for the baseline itself and for the MSPSS.")
    version: int
    created_at: datetime
    created_by: str


class OutcomePoint(BaseModel):
    """The baseline or latest administration in an outcome."""

    measure_id: str
    administered_on: date
    total: Number
    severity: str


class TrajectoryPoint(BaseModel):
    """One administration on the course's time axis."""

    measure_id: str
    administered_on: date
    session_number: int | None
    total: Number


class InstrumentOutcome(BaseModel):
    """The course's outcome on one instrument; flags it does not define are null."""

    instrument: InstrumentId
    baseline: OutcomePoint
    latest: OutcomePoint
    change: Number
    response: bool | None
    remission: bool | None
    reliable_improvement: bool | None
    reliable_deterioration: bool | None
    case_at_baseline: bool | None
    case_at_latest: bool | None
    recovery: bool | None
    reliable_recovery: bool | None
    trajectory: list[TrajectoryPoint]


class PairedOutcome(BaseModel):
    """The NHS Talking Therapies paired PHQ-9 + GAD-7 result."""

    case_at_intake: bool
    recovery: bool | None
    reliable_improvement: bool
    reliable_deterioration: bool


class OutcomesPublic(BaseModel):
    """Outcomes of a course: one per instrument it has, and the paired result (null without both)."""

    instruments: list[InstrumentOutcome]
    paired: PairedOutcome | None


class RiskAcknowledgementCreate(StrictInput):
    """A clinician's review of a measure's positive risk item."""

    measure_id: str = Field(max_length=36)
    note: str = Field(min_length=1, max_length=2000, description="What was reviewed and done.")


class RiskAcknowledgementPublic(BaseModel):
    """A recorded acknowledgement of a risk flag."""

    id: str
    course_id: str
    measure_id: str
    note: str
    by_type: Literal["user", "integration"]
    by_id: str
    at: datetime
    version: int
