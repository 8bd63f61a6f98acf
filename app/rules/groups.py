"""Group IPT (WHO Group IPT for Depression, 2016): the group protocols as data and the group rules G1-G8.

A group has a pre-group phase (individual meetings with a facilitator, one per member, two in
group-ipt-a where the second includes a parent or caregiver), then weekly group sessions: session
1 is the initial phase, the last one (the last two in a group of 12 or more) the termination phase,
the rest the middle phase. The group is closed: members join before group session 1.

Like the rest of the module this is pure: the service passes a snapshot, the rules refuse with a
``RuleViolation`` (409 unless marked 422) or return what to write.

| rule | when | refused with |
|---|---|---|
| G1 | a member joins after group session 1 has been recorded | `group_closed` |
| G2 | a member would take the group over its capacity (capacity itself: 2-12) | `group_full` (capacity out of range: `validation_error`, 422) |
| G3 | a group session is recorded before every member marked present has held their pre-group meetings | `pre_group_required` |
| G4 | a group session beyond the group's planned sessions (range 8-16) | `session_limit_reached` (planned out of range: `planned_sessions_out_of_range`, 422) |
| G5 | a group session dated before the group's latest one, or on a closed group | `session_out_of_order`, `course_closed` |
| G6 | a member's formulation with other than exactly one focal problem area | `too_many_focal_areas` (422) |
| G7 | a facilitator who is not an active clinician of the organization, or other than 1-2 facilitators | `invalid_facilitator` (422) |
| G8 | more pre-group meetings than the protocol holds, or one after group session 1 | `pre_group_complete` |
| G9 | a member's course changed as an individual course would be: opened with a group protocol, a session recorded on it, a phase moved by hand | `group_course` |
"""

from dataclasses import asdict, dataclass
from datetime import date
from typing import NamedTuple

from app.rules.errors import RuleViolation

CAPACITY_MIN, CAPACITY_MAX, DEFAULT_CAPACITY = 2, 12, 8
FACILITATORS_MAX = 2


@dataclass(frozen=True)
class GroupProtocol:
    """One group IPT variant: its pre-group meetings and the numbers of its group sessions."""

    id: str
    name: str
    description: str
    pre_group_meetings: int
    caregiver_meeting: bool  # the last pre-group meeting includes a parent or caregiver
    planned_min: int
    planned_max: int
    default_planned: int
    session_minutes: int

    def termination_count(self, planned: int) -> int:
        """How many of the last group sessions are the termination phase: 1, or 2 in a group of 12 or more."""
        return 2 if planned >= 12 else 1

    def phase_of(self, number: int, planned: int) -> str:
        """The phase group session ``number`` of ``planned`` belongs to."""
        if number <= 1:
            return "initial"
        return "termination" if number > planned - self.termination_count(planned) else "middle"

    def as_dict(self) -> dict:
        """The protocol as JSON-ready data."""
        return asdict(self)


GROUP_PROTOCOLS: dict[str, GroupProtocol] = {
    p.id: p
    for p in (
        GroupProtocol("group-ipt", "Group IPT", "WHO Group IPT for Depression: one pre-group meeting, "
                      "then weekly 90-minute group sessions.", 1, False, 8, 16, 8, 90),
        GroupProtocol("group-ipt-a", "Group IPT-A", "Group IPT for adolescents: two pre-group meetings, "
                      "the second with a parent or caregiver.", 2, True, 8, 16, 8, 90),
    )
}


class GroupSnapshot(NamedTuple):
    """What the group rules need to know about one group at one moment."""

    protocol: str
    planned_sessions: int
    capacity: int
    members: int  # members who have not left
    sessions_held: int  # group sessions recorded so far
    latest_session_on: date | None
    is_open: bool = True


def get_group_protocol(protocol_id: str) -> GroupProtocol:
    """The group protocol ``protocol_id``; an unknown one is a 422 validation error."""
    try:
        return GROUP_PROTOCOLS[protocol_id]
    except (KeyError, TypeError):
        raise RuleViolation("G4", "validation_error", "The protocol is not one of the group IPT protocols.",
                            status=422, context={"allowed": sorted(GROUP_PROTOCOLS)}) from None


def check_group_plan(protocol: str, planned: int, capacity: int, sessions_held: int = 0, members: int = 0) -> None:
    """G2/G4: the planned group sessions and the capacity are in range, and never below what already is."""
    spec = get_group_protocol(protocol)
    if not spec.planned_min <= planned <= spec.planned_max or planned < sessions_held:
        raise RuleViolation("G4", "planned_sessions_out_of_range",
                            f"A {spec.name} group plans between {spec.planned_min} and {spec.planned_max} group "
                            "sessions, and never fewer than it has held.", status=422,
                            context={"min": spec.planned_min, "max": spec.planned_max, "held": sessions_held})
    if not CAPACITY_MIN <= capacity <= CAPACITY_MAX or capacity < members:
        raise RuleViolation("G2", "validation_error",
                            f"A group holds between {CAPACITY_MIN} and {CAPACITY_MAX} members, and never fewer "
                            "than it has.", status=422,
                            context={"min": CAPACITY_MIN, "max": CAPACITY_MAX, "members": members})


def check_join(group: GroupSnapshot) -> None:
    """G1/G2: a member joins an open group before its first group session, while there is room."""
    _check_open(group)
    if group.sessions_held:
        raise RuleViolation("G1", "group_closed", "The group is closed: members join before group session 1.",
                            context={"sessions_held": group.sessions_held})
    if group.members >= group.capacity:
        raise RuleViolation("G2", "group_full", f"The group is full ({group.capacity} members).",
                            context={"capacity": group.capacity})


def check_pre_group_meeting(group: GroupSnapshot, meetings_held: int) -> int:
    """G8: a member's next pre-group meeting is one the protocol holds, before group session 1; return its number."""
    _check_open(group)
    spec = get_group_protocol(group.protocol)
    if group.sessions_held or meetings_held >= spec.pre_group_meetings:
        raise RuleViolation("G8", "pre_group_complete",
                            f"{spec.name} holds {spec.pre_group_meetings} pre-group meeting(s), before group session 1.",
                            context={"pre_group_meetings": spec.pre_group_meetings, "held": meetings_held})
    return meetings_held + 1


def check_group_session(group: GroupSnapshot, held_on: date, present_pre_group: dict[str, int]) -> tuple[int, str]:
    """G3-G5: refuse a group session the contract forbids; return its number and the phase it is in.

    ``present_pre_group`` maps each member marked present to the pre-group meetings they have held.
    """
    _check_open(group)
    spec = get_group_protocol(group.protocol)
    if group.sessions_held >= group.planned_sessions:
        raise RuleViolation("G4", "session_limit_reached",
                            f"The group has held all {group.planned_sessions} planned group sessions.",
                            context={"limit": group.planned_sessions})
    if group.latest_session_on is not None and held_on < group.latest_session_on:
        raise RuleViolation("G5", "session_out_of_order",
                            "A group session cannot be dated before the group's latest one.",
                            context={"latest_session_on": group.latest_session_on.isoformat()})
    missing = sorted(member for member, held in present_pre_group.items() if held < spec.pre_group_meetings)
    if missing:
        raise RuleViolation("G3", "pre_group_required",
                            f"Every member present needs their {spec.pre_group_meetings} pre-group meeting(s) first.",
                            context={"members": missing, "pre_group_meetings": spec.pre_group_meetings})
    number = group.sessions_held + 1
    return number, spec.phase_of(number, group.planned_sessions)


def check_member_focal_areas(focal_areas: int) -> None:
    """G6: a group member works on exactly one focal problem area."""
    if focal_areas != 1:
        raise RuleViolation("G6", "too_many_focal_areas", "A group member has exactly one focal problem area.",
                            status=422, context={"focal_areas": focal_areas, "allowed": 1})


def check_facilitators(facilitators: dict[str, bool]) -> None:
    """G7: one or two facilitators, each an active clinician (``facilitators`` maps id to that)."""
    not_clinicians = sorted(user for user, ok in facilitators.items() if not ok)
    if not 1 <= len(facilitators) <= FACILITATORS_MAX or not_clinicians:
        raise RuleViolation("G7", "invalid_facilitator",
                            f"A group has 1 or {FACILITATORS_MAX} facilitators, each an active clinician of the organization.",
                            status=422, context={"not_clinicians": not_clinicians, "count": len(facilitators)})


def _check_open(group: GroupSnapshot) -> None:
    if not group.is_open:
        raise RuleViolation("G5", "course_closed", "The group has ended and can no longer be changed.")


def check_individual_change(protocol: str) -> None:
    """G9: a group protocol's course is driven by its group: not opened, given sessions or moved on its own."""
    if protocol in GROUP_PROTOCOLS:
        raise RuleViolation("G9", "group_course", "This is a group member's course: its sessions and phases come from "
                            "its group (/v1/groups), and it is opened by joining one.",
                            context={"protocol": protocol})
