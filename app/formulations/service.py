"""Formulation, inventory and timeline changes: only on an open course in reach (S6, S10)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app import rules
from app.core.errors import PreconditionRequired
from app.core.ids import new_id, today
from app.courses import service as courses
from app.deps import Principal
from app.formulations import repository
from app.rules import groups as group_rules


def _with_goal_ids(problem_areas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for area in problem_areas:
        for goal in area["goals"]:
            goal["id"] = goal.get("id") or new_id()
    return problem_areas


def _agreed_on(data: dict[str, Any]) -> date:
    """The date the formulation was agreed: as sent (the body arrives JSON-encoded), else today."""
    value = data.get("agreed_on")
    return date.fromisoformat(value) if isinstance(value, str) else (value or today())


async def put_formulation(
    db: AsyncConnection, principal: Principal, course_id: str, data: dict[str, Any], version: int | None
) -> tuple[dict[str, Any], bool]:
    """Create or replace the formulation (S6, S10); returns it and whether it was created."""
    course = await courses.get_open_for_change(db, principal, course_id)
    areas = [rules.ProblemAreaSnapshot(a["area"], a["focal"], a["primary"]) for a in data["problem_areas"]]
    rules.check_formulation(courses.snapshot(course), areas)
    focal = sum(1 for a in areas if a.focal)
    if course["protocol"] in group_rules.GROUP_PROTOCOLS and (focal > 1 or data["status"] == "agreed"):
        group_rules.check_member_focal_areas(focal)  # G6: a draft may have none yet, never two
    values = {
        "diagnosis": data.get("diagnosis"),
        "summary": data.get("summary"),
        "status": data["status"],
        "agreed_on": _agreed_on(data) if data["status"] == "agreed" else None,
        "problem_areas": _with_goal_ids(data["problem_areas"]),
    }
    existing = await repository.get_formulation(db, course_id)
    if existing is None:
        values |= {"organization_id": principal.organization_id, "course_id": course_id}
        return await repository.insert_formulation(db, values), True
    if version is None:
        raise PreconditionRequired("The formulation exists: send If-Match with its ETag to replace it.")
    return await repository.replace_formulation(db, course_id, version, values), False


async def add_relationship(db: AsyncConnection, principal: Principal, course_id: str, data: dict) -> dict:
    """Add a relationship to the inventory of an open course."""
    await courses.get_open_for_change(db, principal, course_id)
    return await repository.insert_relationship(db, {**data, "organization_id": principal.organization_id, "course_id": course_id})


async def update_relationship(
    db: AsyncConnection, principal: Principal, course_id: str, relationship_id: str, version: int, changes: dict
) -> dict:
    """Change a relationship of an open course's inventory."""
    await courses.get_open_for_change(db, principal, course_id)
    return await repository.update_relationship(db, course_id, relationship_id, version, changes)


async def delete_relationship(
    db: AsyncConnection, principal: Principal, course_id: str, relationship_id: str, version: int
) -> None:
    """Remove a relationship from an open course's inventory."""
    await courses.get_open_for_change(db, principal, course_id)
    await repository.delete_relationship(db, course_id, relationship_id, version)


async def add_event(db: AsyncConnection, principal: Principal, course_id: str, data: dict) -> dict:
    """Add a life event to an open course's timeline."""
    await courses.get_open_for_change(db, principal, course_id)
    return await repository.insert_event(db, {**data, "organization_id": principal.organization_id, "course_id": course_id})
