"""Frozen snapshots of a course, filled by the service from the database, that the rules read.

A course's snapshot and measure facts are named tuples, not frozen dataclasses: every course of
every list page builds both, and a frozen dataclass cost twice as much to build. Both are as
immutable; ``_replace`` makes a changed copy.
"""

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from app.rules.protocols import OPEN_PHASES, Protocol, get_protocol


@dataclass(frozen=True)
class ProblemAreaSnapshot:
    """One problem area of a formulation: its code, whether it is a focus, whether it is primary."""

    area: str
    focal: bool
    primary: bool


@dataclass(frozen=True)
class FormulationSnapshot:
    """The course's formulation: `draft` or `agreed`, and its problem areas."""

    status: str
    problem_areas: tuple[ProblemAreaSnapshot, ...] = ()


class CourseSnapshot(NamedTuple):
    """What the rules need to know about one course at one moment."""

    protocol: str
    phase: str
    planned_sessions: int
    extension_sessions: int
    started_on: date
    attended: int  # attended sessions so far, all phases
    attended_in_phase: int  # attended sessions held in the current phase
    latest_session_on: date | None  # held_on of the latest session of any attendance
    formulation: FormulationSnapshot | None
    inventory_count: int  # relationships in the interpersonal inventory

    @property
    def limit(self) -> int:
        """The contract: planned sessions plus approved extensions."""
        return self.planned_sessions + self.extension_sessions

    @property
    def is_open(self) -> bool:
        """True while the course is in initial, middle or termination."""
        return self.phase in OPEN_PHASES

    @property
    def protocol_spec(self) -> Protocol:
        """The catalogue entry of the course's protocol."""
        return get_protocol(self.protocol)

    @property
    def remaining(self) -> int:
        """Contracted sessions not yet attended (never below zero)."""
        return max(self.limit - self.attended, 0)


class MeasureFacts(NamedTuple):
    """Facts from the measures layer that some advisories need.

    `latest_measure_attended_number`: the number of the last attended session held on or before
    the most recent measure (0 if that measure came before session 1); None if no measure exists.
    `has_baseline`: a measure was recorded at or before session 1.
    `risk_flag_open`: a positive risk item has not yet been acknowledged.
    """

    latest_measure_attended_number: int | None
    has_baseline: bool
    risk_flag_open: bool
