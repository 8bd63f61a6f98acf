"""Pure IPT rules (rules.md): standard library only, no I/O, no clock; `today` is passed in."""

from app.rules.advisories import Advisory, advisories
from app.rules.errors import RuleViolation
from app.rules.formulation import check_formulation
from app.rules.protocols import (
    ATTENDANCE,
    CLOSED_PHASES,
    DISCONTINUE_REASONS,
    FORMULATION_STATUSES,
    OPEN_PHASES,
    PHASES,
    PROBLEM_AREAS,
    PROTOCOLS,
    ROLE_DISPUTE_STAGES,
    Protocol,
    get_protocol,
)
from app.rules.sessions import (
    check_course_open,
    check_extension,
    check_new_course,
    check_planned_sessions,
    check_session,
    check_session_deletable,
)
from app.rules.snapshot import (
    CourseSnapshot,
    FormulationSnapshot,
    MeasureFacts,
    ProblemAreaSnapshot,
)
from app.rules.transitions import ALLOWED, check_transition

__all__ = [
    "ALLOWED",
    "ATTENDANCE",
    "CLOSED_PHASES",
    "DISCONTINUE_REASONS",
    "FORMULATION_STATUSES",
    "OPEN_PHASES",
    "PHASES",
    "PROBLEM_AREAS",
    "PROTOCOLS",
    "ROLE_DISPUTE_STAGES",
    "Advisory",
    "CourseSnapshot",
    "FormulationSnapshot",
    "MeasureFacts",
    "ProblemAreaSnapshot",
    "Protocol",
    "RuleViolation",
    "advisories",
    "check_course_open",
    "check_extension",
    "check_formulation",
    "check_new_course",
    "check_planned_sessions",
    "check_session",
    "check_session_deletable",
    "check_transition",
    "get_protocol",
]
