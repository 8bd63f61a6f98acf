"""The IPT catalogue as data (domain.md): protocols, phases, problem areas, closed vocabularies."""

from dataclasses import asdict, dataclass

from app.rules.errors import RuleViolation


@dataclass(frozen=True)
class Protocol:
    """One IPT variant and the numbers its contract obeys."""

    id: str
    name: str
    description: str
    planned_min: int
    planned_max: int
    default_planned: int
    initial_max: int  # session initial_max + 1 cannot be held in the initial phase
    termination_min: int  # the last termination_min sessions of the contract are termination
    extension_max: int  # total approved extension sessions allowed

    def as_dict(self) -> dict:
        """The protocol as JSON-ready data."""
        return asdict(self)


# domain.md's table: planned range and default, initial phase at most, termination at least,
# extension at most.
_CATALOGUE = (
    ("ipt", "IPT", "Individual IPT for adults, acute.",
     12, 16, 16, 4, 2, 4),
    ("ipt-a", "IPT-A", "IPT for adolescents (12-18); parents join some sessions.",
     12, 16, 12, 4, 2, 4),
    ("ipt-b", "Brief IPT", "Brief IPT; initial phase cut to 2 sessions.",
     8, 9, 8, 2, 1, 2),
    ("ipc", "IPC", "Interpersonal counselling, for primary care, often by nurses.",
     3, 6, 6, 1, 1, 2),
    ("ipt-m", "Maintenance IPT", "Maintenance IPT after a remitted acute course, monthly.",
     6, 36, 12, 2, 1, 12),
)
PROTOCOLS: dict[str, Protocol] = {row[0]: Protocol(*row) for row in _CATALOGUE}
# A group member's own course: its numbers, for the rules that read any course (app.rules.groups holds
# the group's side: pre-group meetings, closure, the phase of each group session). Not in the
# catalogue above: such a course is opened by joining a group, and its sessions are the group's (G9).
MEMBER_PROTOCOLS: dict[str, Protocol] = {row[0]: Protocol(*row) for row in (
    ("group-ipt", "Group IPT", "A member's course in a WHO Group IPT group (8-16 weekly group sessions).",
     8, 16, 8, 1, 1, 0),
    ("group-ipt-a", "Group IPT-A", "A member's course in a group IPT-A group (adolescents, with a caregiver meeting).",
     8, 16, 8, 1, 1, 0),
)}

PHASES = ("initial", "middle", "termination", "completed", "discontinued")
OPEN_PHASES = frozenset({"initial", "middle", "termination"})
CLOSED_PHASES = frozenset({"completed", "discontinued"})

PROBLEM_AREAS = ("grief", "role_dispute", "role_transition", "interpersonal_deficits")
ROLE_DISPUTE_STAGES = ("renegotiation", "impasse", "dissolution")
FORMULATION_STATUSES = ("draft", "agreed")
ATTENDANCE = ("attended", "missed", "cancelled")

# P7: the only accepted reasons for ending a course early.
DISCONTINUE_REASONS = (
    "patient_withdrew",
    "lost_to_follow_up",
    "referred_on",
    "clinical_deterioration",
    "moved_away",
    "other",
)


def get_protocol(protocol_id: str) -> Protocol:
    """The catalogue entry for `protocol_id`; an unknown id is a 422 validation error."""
    try:
        return PROTOCOLS[protocol_id] if protocol_id in PROTOCOLS else MEMBER_PROTOCOLS[protocol_id]
    except (KeyError, TypeError):
        raise RuleViolation(
            "S1",
            "validation_error",
            "The protocol is not one of the known IPT protocols.",
            status=422,
            context={"allowed": sorted(PROTOCOLS)},
        ) from None
