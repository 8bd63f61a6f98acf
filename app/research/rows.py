"""Research rows from stored values: pure functions, no I/O (the repository feeds them tuples).

Every code column is checked against its list of codes, so a stray value in the database can
never carry text into an export; dates become a year, an age or (``limited``) a day count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import orjson

from app import instruments
from app.research.columns import END_REASONS, OUTCOME_FIELDS, SEXES
from app.research.pseudonyms import Pseudonymizer
from app.rules import OPEN_PHASES, PHASES, PROBLEM_AREAS, PROTOCOLS
from app.rules.protocols import MEMBER_PROTOCOLS

AGE_CAP = 90  # HIPAA Safe Harbor: ages over 89 are aggregated into one category
_SEVERITIES = {i: frozenset(b.code for b in inst.bands) for i, inst in instruments.INSTRUMENTS.items()}
_MEAN_SCORED = frozenset(i for i, inst in instruments.INSTRUMENTS.items() if inst.scoring == "mean")
_NO_OUTCOME = (None,) * (len(OUTCOME_FIELDS) - 1)
_MEASURE_PHASES = {p: p for p in OPEN_PHASES}  # a measure is taken while the course is open
_ITEM_CHARS = str.maketrans("", "", "0123456789, []")  # json.dumps of a list of whole numbers uses only these


_PROTOCOLS = frozenset((*PROTOCOLS, *MEMBER_PROTOCOLS))  # a group member's course is exported too


def _code(value: Any, allowed: Iterable[str]) -> str | None:
    return value if value in allowed else None


def age_at_start(birth_date: date | None, started_on: date) -> int | str | None:
    """Whole years from birth to the start of the course; "90+" from 90; None when unknown or impossible."""
    if birth_date is None:
        return None
    years = started_on.year - birth_date.year - ((started_on.month, started_on.day) < (birth_date.month, birth_date.day))
    if years < 0:
        return None
    return f"{AGE_CAP}+" if years >= AGE_CAP else years


def focal_areas(problem_areas: Any) -> tuple[str | None, str | None]:
    """(primary, secondary) focal problem-area codes of a formulation; only the codes, never the details."""
    if isinstance(problem_areas, str | bytes):
        problem_areas = orjson.loads(problem_areas)
    if not isinstance(problem_areas, list):
        return None, None
    focal = [a for a in problem_areas if isinstance(a, dict) and a.get("focal") and a.get("area") in PROBLEM_AREAS]
    focal.sort(key=lambda a: not a.get("primary"))  # the primary first; stable otherwise
    codes = [a["area"] for a in focal[:2]]
    return (codes + [None, None])[0], (codes + [None, None])[1]


def total_of(instrument_id: str, total: Any) -> int | float:
    """A stored total as exported: a whole number, or the MSPSS mean to 2 decimals."""
    return round(float(total), 2) if instrument_id in _MEAN_SCORED else int(total)


def course_facts(pseudonym: Pseudonymizer, profile: str, course_id: str, patient_id: str, protocol: str,
                 started_on: date, birth_date: date | None, sex: str, group_id: str | None, problem_areas: Any) -> tuple:
    """The values of columns.COURSE_FACTS for one course."""
    primary, secondary = focal_areas(problem_areas)
    return (
        profile,
        pseudonym("patient", patient_id),
        pseudonym("course", course_id),
        None if group_id is None else pseudonym("group", group_id),
        _code(protocol, _PROTOCOLS),
        age_at_start(birth_date, started_on),
        _code(sex, SEXES) or "unknown",
        started_on.year,
        primary,
        secondary,
    )


def items_json(stored: Any) -> str | None:
    """Stored item responses as compact JSON text ("[3,2,0]"), checked to hold only whole numbers; None when absent.

    Kept as text so that NDJSON embeds it as it is (encoding.py) instead of parsing and re-encoding it per row.
    """
    if stored is None:
        return None
    if type(stored) is str and stored[:1] == "[" and not stored.translate(_ITEM_CHARS):
        return stored  # only digits, commas, spaces and brackets: it cannot carry text
    value = orjson.loads(stored) if isinstance(stored, str | bytes) else stored
    if isinstance(value, list) and all(type(v) is int for v in value):
        return orjson.dumps(value).decode()
    return None  # JSON null (a total-only instrument), or anything that is not a list of whole numbers


class MeasureRows:
    """Turns batches of repository measure rows into (course facts, measure values) pairs.

    A raw row is the course (id, patient id, protocol, started_on), the patient (birth_date, sex),
    the formulation's problem areas, then the measure (instrument, administered_on, items as JSON
    text, total, severity, session number, phase). Rows of one course are consecutive, so the
    course facts are worked out once per course and shared (the same tuple) by its rows. The
    values are columns.MEASURE_COLUMNS with 'items' as one value. This loop runs once per
    exported measure: keep it lean (no per-row function calls beyond the unavoidable).
    """

    def __init__(self, pseudonym: Pseudonymizer, profile: str) -> None:
        self.pseudonym, self.profile, self.limited = pseudonym, profile, profile == "limited"
        self.course_id: str | None = None
        self.facts: tuple = ()
        self.started_on: date | None = None

    def batch(self, raw: Iterable[Sequence[Any]]) -> list[tuple[tuple, tuple]]:
        """The pairs for one batch of raw rows."""
        out = []
        append, limited, phases, severities, mean_scored, items_of = (
            out.append, self.limited, _MEASURE_PHASES, _SEVERITIES, _MEAN_SCORED, items_json)
        for (course_id, patient_id, protocol, started_on, birth_date, sex, group_id, areas,
             instrument, administered_on, items, total, severity, session_number, phase) in raw:
            if course_id != self.course_id:
                self.course_id, self.started_on = course_id, started_on
                self.facts = course_facts(self.pseudonym, self.profile, course_id, patient_id, protocol, started_on,
                                          birth_date, sex, group_id, areas)
            valid = severities.get(instrument)
            if valid is None:
                continue  # not an instrument of the catalogue: nothing about it can be vouched for
            total = round(total, 2) if instrument in mean_scored else int(total)
            if severity not in valid:
                severity = None
            if limited:
                day = (administered_on - started_on).days
                append((self.facts, (phases.get(phase), session_number, day, instrument, total, severity,
                                     items_of(items))))
            else:
                append((self.facts, (phases.get(phase), session_number, instrument, total, severity,
                                     items_of(items))))
        return out


def _outcome_values(instrument_id: str, points: list[instruments.MeasurePoint]) -> tuple:
    if not points:
        return (0, *_NO_OUTCOME)
    result = instruments.instrument_outcome(instrument_id, points)
    first, last = result["trajectory"][0], result["trajectory"][-1]
    return (
        len(points),
        result["baseline"]["total"], first["session_number"],
        result["latest"]["total"], last["session_number"],
        result["change"], result["response"], result["remission"],
        result["reliable_improvement"], result["reliable_deterioration"],
        result["case_at_baseline"], result["case_at_latest"], result["recovery"], result["reliable_recovery"],
    )


def course_values(limited: bool, started_on: date, planned_sessions: int, extension_sessions: int, phase: str,
                  end_reason: str | None, sessions_attended: int, ended_on: date | None,
                  measures: Sequence[Sequence[Any]]) -> tuple:
    """The values of columns.COURSE_COLUMNS, OUTCOME_COLUMNS and PAIRED_COLUMNS for one course.

    ``measures`` are the course's (instrument, administered_on, session_number, total, severity),
    oldest first.
    """
    points: dict[str, list[instruments.MeasurePoint]] = {i: [] for i in instruments.INSTRUMENTS}
    for instrument, administered_on, session_number, total, severity in measures:
        if instrument in points:
            points[instrument].append(instruments.MeasurePoint(
                "", administered_on, session_number, total_of(instrument, total), severity))
    paired = instruments.paired_outcome(points["phq-9"], points["gad-7"]) or {}
    head = [planned_sessions, extension_sessions, _code(phase, PHASES), _code(end_reason, END_REASONS),
            sessions_attended, sessions_attended >= 2]
    if limited:
        head.append(None if ended_on is None else (ended_on - started_on).days)
    for instrument_id in instruments.INSTRUMENTS:
        head.extend(_outcome_values(instrument_id, points[instrument_id]))
    head.extend(paired.get(name) for name in
                ("case_at_intake", "recovery", "reliable_improvement", "reliable_deterioration"))
    return tuple(head)


class CourseRows:
    """Turns batches of repository.COURSE_ROW tuples (one per measure, ordered by course) into one pair per course.

    A raw row is the course (id, patient id, protocol, started_on, birth_date, sex, problem areas,
    planned, extensions, phase, end reason, attended, ended_on) and one of its measures (instrument,
    administered_on, session number, total, severity; all None for a course without measures).
    Only the course being read is held, so memory stays flat however many courses there are.
    """

    def __init__(self, pseudonym: Pseudonymizer, profile: str) -> None:
        self.pseudonym, self.profile, self.limited = pseudonym, profile, profile == "limited"
        self.course: Sequence[Any] | None = None
        self.measures: list[tuple] = []

    def batch(self, raw: Iterable[Sequence[Any]]) -> list[tuple[tuple, tuple]]:
        """The pairs of the courses this batch completes (the last course waits for the next batch or finish)."""
        out = []
        for row in raw:
            if self.course is None or row[0] != self.course[0]:
                if self.course is not None:
                    out.append(self._pair())
                self.course, self.measures = row, []
            if row[14] is not None:
                self.measures.append(tuple(row[14:19]))
        return out

    def finish(self) -> list[tuple[tuple, tuple]]:
        """The pair of the last course, once every row has been read."""
        if self.course is None:
            return []
        pair, self.course, self.measures = self._pair(), None, []
        return [pair]

    def _pair(self) -> tuple[tuple, tuple]:
        (course_id, patient_id, protocol, started_on, birth_date, sex, group_id, areas,
         planned, extensions, phase, end_reason, attended, ended_on) = self.course[:14]
        facts = course_facts(self.pseudonym, self.profile, course_id, patient_id, protocol, started_on, birth_date,
                             sex, group_id, areas)
        return facts, course_values(self.limited, started_on, planned, extensions, phase, end_reason, attended,
                                    ended_on, self.measures)
