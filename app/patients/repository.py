"""Every query that reads or writes patients, each filtered by organization and caseload."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import context as audit
from app.core.db import insert_ignoring_conflicts
from app.core.errors import Conflict, NotFound
from app.core.fastsql import Statement
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, update_versioned
from app.courses.models import Course
from app.deps import Principal
from app.groups.models import GroupMember
from app.groups.repository import facilitated
from app.patients.models import Patient

PUBLIC = ("id", "organization_id", "external_id", "display_name", "birth_date", "sex", "version", "created_at", "updated_at")
_public = columns(Patient, PUBLIC)


def reach(principal: Principal) -> sa.ColumnElement[bool]:
    """The patients a caller may see: the organization's, narrowed to a clinician's caseload."""
    in_org = Patient.organization_id == principal.organization_id
    if principal.sees_whole_organization:
        return in_org
    return sa.and_(in_org, sa.or_(*caseload_clauses(principal)))


def caseload_clauses(principal: Principal, me: Any = None) -> list[sa.ColumnElement[bool]]:
    """A clinician's caseload: patients of courses they treat, and those they created with no course yet."""
    me = principal.id if me is None else me
    any_course = sa.select(Course.id).where(Course.patient_id == Patient.id)
    return [
        sa.exists(any_course.where(Course.therapist_id == me)),
        sa.and_(Patient.created_by == me, ~sa.exists(any_course)),
    ]


def _prebuilt_get() -> dict[tuple[bool, bool], Statement]:
    """The read-one statements, built once: (whole organization?, lock?) -> statement with bind parameters."""
    me = Principal("user", "", "", frozenset())
    base = sa.select(*_public).where(Patient.id == sa.bindparam("patient_id"),
                                     Patient.organization_id == sa.bindparam("org"))
    caseload = base.where(sa.or_(*caseload_clauses(me, sa.bindparam("me"))))
    return {(whole, lock): Statement(stmt.with_for_update(of=Patient) if lock else stmt)
            for whole, stmt in ((True, base), (False, caseload)) for lock in (False, True)}


async def get(db: AsyncConnection, principal: Principal, patient_id: str, *, lock: bool = False) -> dict[str, Any]:
    """One patient in reach, or 404; ``lock`` holds the row (course creation serializes on it)."""
    query = _GET[(principal.sees_whole_organization, lock)]
    params = {"patient_id": patient_id, "org": principal.organization_id, "me": principal.id}
    row = await query.first(db, params)
    if row is None and not principal.sees_whole_organization:
        row = await _FACILITATED[lock].first(db, params)  # a member of a group the clinician co-facilitates
    if row is None:
        raise NotFound("No such patient.")
    audit.note(patient_id=row["id"])
    return dict(row)


_GET = _prebuilt_get()


def _facilitated() -> dict[bool, Statement]:
    """A patient who is a member of a group the clinician facilitates (read only after their own caseload missed)."""
    members = facilitated(GroupMember.patient_id, sa.bindparam("me"))
    base = sa.select(*_public).where(Patient.id == sa.bindparam("patient_id"),
                                     Patient.organization_id == sa.bindparam("org"), Patient.id.in_(members))
    return {lock: Statement(base.with_for_update(of=Patient) if lock else base) for lock in (False, True)}


_FACILITATED = _facilitated()


async def list_page(db: AsyncConnection, principal: Principal, page: Page, external_id: str | None) -> dict:
    """A page of patients in reach, optionally the one with an EHR id."""
    query = sa.select(*_public).where(reach(principal))
    if external_id is not None:
        query = query.where(Patient.external_id == external_id)
    return await fetch_page(db, query, Patient.id, page)


async def create(db: AsyncConnection, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Insert a patient; 409 duplicate_external_id (with the existing id) when the EHR id is taken."""
    values = new_row(Patient, {"organization_id": principal.organization_id, "created_by": principal.id, **data})
    row = await insert_ignoring_conflicts(db, Patient.__table__, values, _public)
    if row is not None:
        return row
    existing = await db.scalar(
        sa.select(Patient.id).where(
            Patient.organization_id == principal.organization_id, Patient.external_id == data["external_id"]
        )
    )
    raise Conflict(
        "duplicate_external_id", "A patient with this external_id already exists.", existing_id=existing
    )


async def update(
    db: AsyncConnection, principal: Principal, patient_id: str, version: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change a patient at the version the caller read."""
    if changes.get("external_id") is not None:
        taken = await db.scalar(
            sa.select(Patient.id).where(
                Patient.organization_id == principal.organization_id,
                Patient.external_id == changes["external_id"],
                Patient.id != patient_id,
            )
        )
        if taken is not None:
            raise Conflict("duplicate_external_id", "A patient with this external_id already exists.", existing_id=taken)
    where = sa.and_(Patient.id == patient_id, reach(principal))
    return await update_versioned(db, Patient, where, version, changes, _public)
