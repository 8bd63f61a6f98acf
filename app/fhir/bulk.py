"""FHIR Bulk Data Access 2.0 ``$export``: the kick-off's parameters, and the sources a job reads in parts.

Decisions where the specification leaves a choice:

- Levels: system (``[base]/$export``) exports everything of the requester's reach, Practitioners
  included; Patient-level (``[base]/Patient/$export``) the patients in reach and everything in their
  compartment; Group-level (``[base]/Group/{id}/$export``) one clinician's caseload, as the service
  defines a caseload (patients of the courses they treat, and those they added with no course
  yet): the group's id is the clinician's Practitioner id. A clinician may export only their own.
  A group IPT group's id exports its members instead (their own courses, whoever treats them):
  a Group the view also reads (``GET /fhir/r4/Group/{id}``).
- A job is worked in parts: each reads up to a batch of rows of one source after the last id the
  job saved, renders them with the same mapping as the FHIR view (``app.fhir.mapping``: ids and
  codes, never a name or free text), and stores one NDJSON file per resource type, in one
  transaction with the new position. Nothing is written twice, nothing skipped, wherever a worker
  stops.
- ``transactionTime`` is when the job was accepted: a resource changed after it is left out (the
  next export with ``_since`` = that time gets it), so a long export is not a moving target.
  ``_since`` keeps resources changed at or after it (a measure counts as changed when recorded).
- ``allowPartialManifests=true`` (Bulk Data 3.0, which 2.0 clients never send): while the job
  runs, its status URL answers 202 with a manifest of the files written so far, so the client
  downloads while the rest is written. A manifest, once returned, keeps its files; when more are
  written it gains a ``link`` to the next manifest (``?page=N``), which takes every file written
  since (at most MANIFEST_FILES). Once the job is complete its manifests answer 200, the last with
  no ``link``. Without the parameter a client gets the one manifest when the job is complete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import BadRequest
from app.core.fastsql import Statement
from app.core.http import dumps
from app.core.ids import as_utc
from app.courses import repository as courses
from app.courses.models import Course
from app.deps import Principal
from app.fhir import mapping, templates
from app.formulations.models import Formulation
from app.groups.models import GroupMember
from app.identity.models import AppUser
from app.measures.models import Measure
from app.patients import repository as patients
from app.patients.models import Patient
from app.sessions.models import TherapySession

COMPARTMENT = ("Patient", "EpisodeOfCare", "Condition", "Encounter", "QuestionnaireResponse", "Observation")
LEVEL_TYPES = {"system": (*COMPARTMENT, "Practitioner"), "patient": COMPARTMENT, "group": COMPARTMENT,
               "members": COMPARTMENT}  # group: a clinician's caseload; members: a group IPT group's members
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
KNOWN = ("_type", "_since", "_outputFormat", "_format", "allowPartialManifests")


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What a kick-off asked for, checked."""

    types: tuple[str, ...]
    since: datetime | None
    partial_manifests: bool = False  # allowPartialManifests (Bulk Data 3.0): manifests while it runs


def parse(level: str, params: Mapping[str, str], prefer: str | None) -> ExportRequest:
    """Check a kick-off's ``Prefer`` header and parameters; BadRequest (400) names what is wrong."""
    preferences = {p.strip().lower() for p in (prefer or "").split(",")}
    if "respond-async" not in preferences:
        raise BadRequest("A Bulk Data kick-off needs the header Prefer: respond-async.")
    lenient = "handling=lenient" in preferences
    unsupported = [name for name in params if name not in KNOWN]
    if unsupported and not lenient:  # _typeFilter, patient, includeAssociatedData, _elements, ... or a typo
        raise BadRequest(f"The parameter {unsupported[0][:40]!r} is not supported (Prefer: handling=lenient ignores it).")
    output_format = params.get("_outputFormat", OUTPUT_FORMATS[0])
    if output_format not in OUTPUT_FORMATS:
        raise BadRequest("_outputFormat must be application/fhir+ndjson (or application/ndjson, ndjson).")
    allowed = LEVEL_TYPES[level]
    types = allowed
    if params.get("_type"):
        asked = tuple(dict.fromkeys(t.strip() for t in params["_type"].split(",") if t.strip()))
        unknown = [t for t in asked if t not in allowed]
        if unknown and not lenient:
            raise BadRequest(f"_type names types this export does not serve: {', '.join(t[:40] for t in unknown[:5])}; "
                             f"it serves {', '.join(allowed)}.")
        types = tuple(t for t in asked if t in allowed)
        if not types:
            raise BadRequest(f"_type names no type this export serves ({', '.join(allowed)}).")
    partial = params.get("allowPartialManifests", "false")
    if partial not in ("true", "false"):
        raise BadRequest("allowPartialManifests must be true or false.")
    return ExportRequest(types, _instant(params["_since"]) if params.get("_since") else None, partial == "true")


def _instant(value: str) -> datetime:
    """A FHIR instant: a date and time with a zone."""
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "Zz" else value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadRequest("_since must be a FHIR instant with a time zone, such as 2026-01-01T00:00:00Z.")
    return moment


# sources ----------------------------------------------------------------------------------------
Lines = dict[str, list[bytes]]  # NDJSON lines by resource type (orjson's bytes)
Files = dict[str, tuple[int, list[bytes]]]  # by resource type: how many resources, and their NDJSON in pieces


@dataclass(frozen=True, slots=True)
class Source:
    """Rows of one table a job reads in id order, and the resource types they render to."""

    name: str
    types: tuple[str, ...]
    id_column: Any
    query: Callable[[dict[str, Any]], sa.Select]
    render: Callable[[Sequence[Any], dict[str, Any], tuple[str, ...]], Files]  # a batch of rows
    positional: bool = False  # rows are read by position (the render's own column order), not by name


def requester(job: dict[str, Any]) -> Principal:
    """The principal a job reads as: its requester, with the reach it had when it asked."""
    roles = ("supervisor",) if job["whole_organization"] and job["requested_by_type"] == "user" else ("clinician",)
    return Principal(job["requested_by_type"], job["requested_by_id"], job["organization_id"], frozenset(), roles)


def _changed(column: Any, job: dict[str, Any]) -> sa.ColumnElement[bool]:
    """Changed no later than the job's transactionTime, and (with _since) no earlier than _since."""
    clause = column <= job["transaction_time"]
    return sa.and_(clause, column >= job["since"]) if job["since"] is not None else clause


def _in_time(moment: Any, job: dict[str, Any]) -> bool:
    """The same test in Python, for a resource of a row whose other resources the query already let in."""
    moment = as_utc(moment)
    return moment <= as_utc(job["transaction_time"]) and (job["since"] is None or moment >= as_utc(job["since"]))


def _courses(job: dict[str, Any]) -> sa.ColumnElement[bool]:
    """The courses in the job's reach (and group: a caseload's, or a group IPT group's members')."""
    clause = courses.reach(requester(job))
    if job["level"] == "members":
        return sa.and_(clause, Course.id.in_(sa.select(GroupMember.course_id).where(GroupMember.group_id == job["group_id"])))
    return sa.and_(clause, Course.therapist_id == job["group_id"]) if job["group_id"] else clause


_PATIENT_REF = (Patient.id.label("patient_id"), Patient.external_id.label("patient_external_id"))


def _patient_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["patient_id"], "external_id": row["patient_external_id"]}


def _patient_query(job: dict[str, Any]) -> sa.Select:
    principal = requester(job)
    clause = patients.reach(principal)
    if job["level"] == "members":
        clause = sa.and_(clause, Patient.id.in_(sa.select(GroupMember.patient_id).where(GroupMember.group_id == job["group_id"])))
    elif job["group_id"]:
        clause = sa.and_(clause, sa.or_(*patients.caseload_clauses(principal, job["group_id"])))
    columns = (Patient.id, Patient.external_id, Patient.sex, Patient.birth_date, Patient.version, Patient.updated_at)
    return sa.select(*columns).where(clause, _changed(Patient.updated_at, job))


def _practitioner_query(job: dict[str, Any]) -> sa.Select:
    columns = (AppUser.id, AppUser.active, AppUser.roles, AppUser.version, AppUser.updated_at)
    return sa.select(*columns).where(AppUser.organization_id == job["organization_id"], _changed(AppUser.updated_at, job))


def _course_query(job: dict[str, Any]) -> sa.Select:
    columns = (Course.id, Course.phase, Course.protocol, Course.started_on, Course.ended_on, Course.therapist_id,
               Course.version, Course.updated_at, *_PATIENT_REF, Formulation.id.label("f_id"),
               Formulation.status.label("f_status"), Formulation.problem_areas.label("f_problem_areas"),
               Formulation.agreed_on.label("f_agreed_on"), Formulation.created_at.label("f_created_at"),
               Formulation.version.label("f_version"), Formulation.updated_at.label("f_updated_at"))
    changed = sa.or_(_changed(Course.updated_at, job), _changed(Formulation.updated_at, job))
    return (sa.select(*columns).join(Patient, Patient.id == Course.patient_id)
            .outerjoin(Formulation, Formulation.course_id == Course.id).where(_courses(job), changed))


def _session_query(job: dict[str, Any]) -> sa.Select:
    columns = (TherapySession.id, TherapySession.course_id, TherapySession.held_on, TherapySession.attendance,
               TherapySession.modality, TherapySession.duration_minutes, TherapySession.problem_areas_addressed,
               TherapySession.version, TherapySession.updated_at, *_PATIENT_REF)
    return (sa.select(*columns).join(Course, Course.id == TherapySession.course_id)
            .join(Patient, Patient.id == Course.patient_id)
            .where(TherapySession.organization_id == job["organization_id"], _courses(job),
                   _changed(TherapySession.updated_at, job)))


def _measure_query(job: dict[str, Any]) -> sa.Select:
    # The columns app.fhir.templates reads, in its order: the answers as the JSON text they are stored as
    # (split there, cheaper than parsing), the version as text and the total as a float.
    named = {"id": Measure.id, "version": sa.cast(Measure.version, sa.String), "course_id": Measure.course_id,
             "administered_on": Measure.administered_on, "patient_id": Patient.id,
             "total": sa.cast(Measure.total, sa.Float), "session_id": Measure.session_id,
             "patient_external_id": Patient.external_id, "instrument": Measure.instrument,
             "severity": Measure.severity, "items_json": sa.cast(Measure.items, sa.Text)}
    columns = [named[name].label(name) for name in templates.COLUMNS]
    return (sa.select(*columns).join(Course, Course.id == Measure.course_id)
            .join(Patient, Patient.id == Course.patient_id)
            .where(Measure.organization_id == job["organization_id"], _courses(job), _changed(Measure.created_at, job)))


def _render_patient(row: dict, job: dict, types: tuple[str, ...]) -> Lines:
    return {"Patient": [dumps(mapping.patient(row))]}


def _render_practitioner(row: dict, job: dict, types: tuple[str, ...]) -> Lines:
    if not {"clinician", "supervisor"} & set(row["roles"] or ()):
        return {}  # admins and researchers treat no one
    return {"Practitioner": [dumps(mapping.practitioner(row))]}


def _render_course(row: dict, job: dict, types: tuple[str, ...]) -> Lines:
    formulation = None
    if row["f_id"] is not None:
        formulation = {"id": row["f_id"], "status": row["f_status"], "problem_areas": row["f_problem_areas"],
                       "agreed_on": row["f_agreed_on"], "created_at": row["f_created_at"],
                       "version": row["f_version"], "updated_at": row["f_updated_at"]}
    patient, out = _patient_of(row), {}
    if "EpisodeOfCare" in types and _in_time(row["updated_at"], job):
        out["EpisodeOfCare"] = [dumps(mapping.episode_of_care(row, patient, formulation))]
    if "Condition" in types and formulation is not None and _in_time(formulation["updated_at"], job):
        out["Condition"] = [dumps(c) for c in mapping.conditions(formulation, patient)]
    return out


def _render_session(row: dict, job: dict, types: tuple[str, ...]) -> Lines:
    return {"Encounter": [dumps(mapping.encounter(row, _patient_of(row)))]}


def _render_measures(rows: Sequence[Any], job: dict, types: tuple[str, ...]) -> Files:
    # The hot path of a big export: the mapping's own rendering, from templates (app.fhir.templates).
    pieces = templates.measure_ndjson(rows, "QuestionnaireResponse" in types, "Observation" in types)
    return {t: (len(rows), ndjson) for t, ndjson in zip(("QuestionnaireResponse", "Observation"), pieces) if ndjson}


def _each(render: Callable[[dict, dict, tuple[str, ...]], Lines]) -> Callable[[Sequence[Any], dict, tuple[str, ...]], Files]:
    """A batch renderer from a row renderer."""

    def batch(rows: Sequence[Any], job: dict, types: tuple[str, ...]) -> Files:
        lines: Lines = {t: [] for t in types}
        for row in rows:
            for resource_type, rendered in render(row, job, types).items():
                lines[resource_type] += rendered
        return {t: (len(ls), [b"\n".join(ls) + b"\n"]) for t, ls in lines.items() if ls}

    return batch


SOURCES = (
    Source("patients", ("Patient",), Patient.id, _patient_query, _each(_render_patient)),
    Source("practitioners", ("Practitioner",), AppUser.id, _practitioner_query, _each(_render_practitioner)),
    Source("courses", ("EpisodeOfCare", "Condition"), Course.id, _course_query, _each(_render_course)),
    Source("sessions", ("Encounter",), TherapySession.id, _session_query, _each(_render_session)),
    Source("measures", ("QuestionnaireResponse", "Observation"), Measure.id, _measure_query, _render_measures,
           positional=True),
)


@dataclass(frozen=True, slots=True)
class Batch:
    """One step of a job: up to a batch of one source's rows, the position after them, whether the job is done."""

    source: int  # the index in SOURCES (len(SOURCES) when the job had nothing more to read)
    rows: Sequence[Any]
    position: dict[str, Any]
    done: bool


def _statement(source: Source, job: dict[str, Any], batch: int) -> Statement:
    """A source's next ``batch`` rows in id order after a given id (bind ``after``).

    The limit is written into the statement: PostgreSQL plans a prepared statement's later runs
    once for any value of its parameters, and with the limit unknown that plan sorts every row.
    """
    query = source.query(job).where(source.id_column > sa.bindparam("after", type_=sa.String))
    return Statement(query.order_by(source.id_column).limit(batch))


async def next_batch(db: AsyncConnection, job: dict[str, Any], batch: int,
                     statements: dict[int, Statement] | None = None) -> Batch:
    """Read the next batch of the job's current source (moving on to the next source when one ends).

    ``statements`` keeps each source's statement, compiled once, for the job's next batches.
    """
    statements = {} if statements is None else statements
    position = dict(job["position"] or {"source": 0, "after": ""})
    wanted = tuple(job["types"])
    while position["source"] < len(SOURCES):
        at = position["source"]
        source = SOURCES[at]
        if not any(t in wanted for t in source.types):
            position = {"source": at + 1, "after": ""}
            continue
        statement = statements.get(at) or statements.setdefault(at, _statement(source, job, batch))
        params = {"after": position["after"]}  # PostgreSQL: the driver's records, no ORM result layer
        rows = await (statement.records(db, params) if source.positional else statement.mappings(db, params))
        if len(rows) < batch:
            position = {"source": at + 1, "after": ""}
        else:  # the id is the first column of every source's query
            position = {"source": at, "after": rows[-1][0 if source.positional else "id"]}
        done = position["source"] >= len(SOURCES)
        if rows or done:
            return Batch(at, rows, position, done)
    return Batch(len(SOURCES), (), position, True)


def render(batch: Batch, job: dict[str, Any]) -> Files:
    """A batch's resources as one NDJSON file per resource type (only the types asked for), in pieces."""
    if not batch.rows:
        return {}
    source = SOURCES[batch.source]
    return source.render(batch.rows, job, tuple(t for t in source.types if t in job["types"]))
