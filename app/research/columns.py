"""The research export's columns as data: what each one means, its type, and which profile and format carry it.

The exports and ``GET /v1/research/dictionary`` are both built from these lists, so a column cannot
be exported without being documented. Nothing here is free text, a name, a date or a real id.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.instruments import INSTRUMENTS
from app.rules import DISCONTINUE_REASONS, PHASES, PROBLEM_AREAS, PROTOCOLS
from app.rules.protocols import MEMBER_PROTOCOLS

PROFILES = ("safe_harbor", "limited")
FORMATS = ("ndjson", "csv")
DATASETS = ("measures", "courses")
SEXES = ("female", "male", "other", "unknown")
END_REASONS = ("completed", *DISCONTINUE_REASONS)
MAX_ITEMS = max(i.item_count for i in INSTRUMENTS.values())  # CSV has item_1 .. item_MAX_ITEMS


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column."""

    name: str
    type: str  # string | integer | number | boolean | array<integer> | integer|string
    meaning: str
    nullable: bool = False
    values: tuple[str, ...] | None = None  # the codes a code column can hold
    profiles: tuple[str, ...] = PROFILES
    formats: tuple[str, ...] = FORMATS

    def as_dict(self) -> dict:
        """The column as the dictionary endpoint shows it."""
        return {"name": self.name, "type": self.type, "meaning": self.meaning, "nullable": self.nullable,
                "values": list(self.values) if self.values is not None else None,
                "profiles": list(self.profiles), "formats": list(self.formats)}


LIMITED = ("limited",)

# The course facts that open every row of both datasets (computed once per course).
COURSE_FACTS = (
    Column("profile", "string", "The de-identification profile this export was made under.", values=PROFILES),
    Column("patient", "string", "The patient's pseudonym: 'p_' and 24 hex digits of HMAC-SHA256 of the patient's id "
           "under the organization's export key. Stable across exports until the key is rotated; unrelated between "
           "organizations. Not reversible without the key, which is never exported."),
    Column("course", "string", "The course's pseudonym: 'c_' and 24 hex digits, made like 'patient'."),
    Column("group", "string", "For a group IPT member's course, the group's pseudonym: 'g_' and 24 hex digits, made "
           "like 'patient' (so members of one group can be modelled as a cluster); null for an individual course.",
           nullable=True),
    Column("protocol", "string", "The IPT protocol of the course (domain.md, Protocols; group-ipt and group-ipt-a: "
           "a group member's course).", values=(*PROTOCOLS, *MEMBER_PROTOCOLS)),
    Column("age_at_start", "integer|string", "The patient's age in whole years on the day the course started; "
           "ages of 90 and over are the string \"90+\" (HIPAA Safe Harbor); null when the birth date is unknown.",
           nullable=True),
    Column("sex", "string", "The patient's recorded sex.", values=SEXES),
    Column("start_year", "integer", "The year the course started (the only date element exported)."),
    Column("problem_area_primary", "string", "The primary focal problem area of the course's formulation (the first "
           "focal area when none is marked primary); null when there is no formulation or no focal area.",
           nullable=True, values=PROBLEM_AREAS),
    Column("problem_area_secondary", "string", "The second focal problem area, if the formulation has two; else null.",
           nullable=True, values=PROBLEM_AREAS),
)

MEASURE_COLUMNS = (
    Column("phase", "string", "The phase in which the attended session numbered session_number was held "
           "('initial' for a baseline before session 1).", nullable=True, values=PHASES[:3]),
    Column("session_number", "integer", "The time axis: the attended session the administration belongs to (its "
           "linked session, else the count of attended sessions held on or before it; 0 before session 1).",
           nullable=True),
    Column("day", "integer", "Days from the start of the course to the administration.", nullable=True,
           profiles=LIMITED),
    Column("instrument", "string", "The instrument administered (GET /v1/instruments).", values=tuple(INSTRUMENTS)),
    Column("total", "number", "The total score computed by the service: a whole number, or the MSPSS mean to 2 "
           "decimals."),
    Column("severity", "string", "The severity band of the total (the instrument's band code)."),
    Column("items", "array<integer>", "The item responses, item 1 first; null for a total-only instrument (BDI-II).",
           nullable=True, formats=("ndjson",)),
    *(
        Column(f"item_{n}", "integer", f"The response to item {n}; empty when the instrument has fewer items or is "
               "total-only (CSV spreads 'items' over these columns).", nullable=True, formats=("csv",))
        for n in range(1, MAX_ITEMS + 1)
    ),
)

COURSE_COLUMNS = (
    Column("planned_sessions", "integer", "Sessions contracted when the course was planned."),
    Column("extension_sessions", "integer", "Sessions added by approved extensions."),
    Column("phase", "string", "The course's phase now; 'completed' or 'discontinued' once it has ended.", values=PHASES),
    Column("end_reason", "string", "How the course ended: 'completed', or the reason it was discontinued; null while "
           "open.", nullable=True, values=END_REASONS),
    Column("sessions_attended", "integer", "Attended sessions (missed and cancelled appointments are not counted)."),
    Column("finished_course", "boolean", "A finished course of treatment for outcome reporting: at least 2 attended "
           "sessions (domain.md). The outcome columns are given for every course; filter on this for reporting."),
    Column("ended_day", "integer", "Days from the start of the course to its end; null while open.", nullable=True,
           profiles=LIMITED),
)

_OUTCOME_FIELDS = (
    ("administrations", "integer", ("How many times {name} was administered in the course (0: never; then the "
                                    "other {prefix}_ columns are null)."), False),
    ("baseline_total", "number", "The {name} total at the first administration.", True),
    ("baseline_session", "integer", "The session number of the first {name} administration.", True),
    ("latest_total", "number", "The {name} total at the most recent administration.", True),
    ("latest_session", "integer", "The session number of the most recent {name} administration.", True),
    ("change", "number", "latest_total - baseline_total ({name}).", True),
    ("response", "boolean", ("{name}: latest <= 50% of baseline; null when the baseline is 0 or the instrument is "
                             "scored higher-is-better."), True),
    ("remission", "boolean", "{name}: latest below the remission threshold; null where not defined.", True),
    ("reliable_improvement", "boolean", ("{name}: moved by at least the reliable-change threshold in the good "
                                         "direction; null where not defined."), True),
    ("reliable_deterioration", "boolean", ("{name}: moved by at least the reliable-change threshold in the bad "
                                           "direction; null where not defined."), True),
    ("case_at_baseline", "boolean", "{name}: baseline at or above the caseness cut-off; null where not defined.", True),
    ("case_at_latest", "boolean", "{name}: latest at or above the caseness cut-off; null where not defined.", True),
    ("recovery", "boolean", "{name}: a case at baseline and not at latest (false when not a case at baseline).", True),
    ("reliable_recovery", "boolean", "{name}: recovery and reliable improvement.", True),
)
OUTCOME_FIELDS = tuple(field for field, *_ in _OUTCOME_FIELDS)


def outcome_prefix(instrument_id: str) -> str:
    """The column prefix of an instrument's outcome columns: phq-9 -> phq_9."""
    return instrument_id.replace("-", "_")


OUTCOME_COLUMNS = tuple(
    Column(f"{outcome_prefix(i)}_{field}", kind, meaning.format(name=inst.name, prefix=outcome_prefix(i)),
           nullable=nullable)
    for i, inst in INSTRUMENTS.items()
    for field, kind, meaning, nullable in _OUTCOME_FIELDS
)

PAIRED_COLUMNS = (
    Column("paired_case_at_intake", "boolean", "PHQ-9 + GAD-7 (NHS Talking Therapies): either baseline at caseness; "
           "null unless the course has both.", nullable=True),
    Column("paired_recovery", "boolean", "A case at intake and both below caseness at the latest date with both; "
           "null when no date has both.", nullable=True),
    Column("paired_reliable_improvement", "boolean", "Either improved reliably and neither deteriorated reliably.",
           nullable=True),
    Column("paired_reliable_deterioration", "boolean", "Either deteriorated reliably.", nullable=True),
)

_ALL = {
    "measures": COURSE_FACTS + MEASURE_COLUMNS,
    "courses": COURSE_FACTS + COURSE_COLUMNS + OUTCOME_COLUMNS + PAIRED_COLUMNS,
}
DESCRIPTIONS = {
    "measures": "One row per administration of an instrument, grouped by course, oldest administration first.",
    "courses": "One row per course, with how it ended and its outcomes per instrument (baseline to latest).",
}
PROFILE_DESCRIPTIONS = {
    "safe_harbor": "The default: none of HIPAA Safe Harbor's 18 identifiers. No names, external ids, free text or "
                   "dates; the start year only; ages of 90 and over as \"90+\"; session numbers as the time axis.",
    "limited": "Safe Harbor plus days since the course started ('day', 'ended_day'). Only for an organization that "
               "has recorded a data-use agreement.",
}
FORMAT_DESCRIPTIONS = {
    "ndjson": "application/x-ndjson: one JSON object per line; null for missing values; 'items' as a list.",
    "csv": "text/csv (RFC 4180): a header row, CRLF line ends; empty for null; booleans as true/false; 'items' "
           f"spread over item_1 .. item_{MAX_ITEMS}.",
}


def columns(dataset: str, profile: str, fmt: str) -> tuple[Column, ...]:
    """The columns of one export, in the order they are written."""
    return tuple(c for c in _ALL[dataset] if profile in c.profiles and fmt in c.formats)


def dictionary() -> dict:
    """Every exported column of every dataset, with its meaning, type, profiles and formats."""
    return {
        "profiles": [{"name": p, "description": PROFILE_DESCRIPTIONS[p]} for p in PROFILES],
        "formats": [{"name": f, "description": FORMAT_DESCRIPTIONS[f]} for f in FORMATS],
        "datasets": [
            {"name": d, "path": f"/v1/research/{d}", "description": DESCRIPTIONS[d],
             "columns": [c.as_dict() for c in _ALL[d]]}
            for d in DATASETS
        ],
    }
