"""Every query on formulations, inventory relationships and timeline events of a course."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, one_or_404, require_version, update_versioned
from app.formulations.models import Formulation, InventoryRelationship, TimelineEvent

FORMULATION_PUBLIC = ("id", "course_id", "diagnosis", "summary", "status", "agreed_on", "problem_areas", "version",
                      "created_at", "updated_at")
INVENTORY_PUBLIC = ("id", "course_id", "label", "relationship", "ring", "contact_frequency", "positives",
                    "difficulties", "expectations", "changes_wanted", "linked_problem_area", "version",
                    "created_at", "updated_at")
TIMELINE_PUBLIC = ("id", "course_id", "occurred_on", "event", "mood_change", "version", "created_at")
_formulation = columns(Formulation, FORMULATION_PUBLIC)
_inventory = columns(InventoryRelationship, INVENTORY_PUBLIC)
_timeline = columns(TimelineEvent, TIMELINE_PUBLIC)


async def get_formulation(db: AsyncConnection, course_id: str) -> dict[str, Any] | None:
    """The course's formulation, or None."""
    row = (await db.execute(sa.select(*_formulation).where(Formulation.course_id == course_id))).mappings().first()
    return dict(row) if row is not None else None


async def insert_formulation(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Create the course's formulation."""
    row = new_row(Formulation, values)
    await db.execute(sa.insert(Formulation).values(row))
    return {name: row[name] for name in FORMULATION_PUBLIC}


async def replace_formulation(db: AsyncConnection, course_id: str, version: int, values: dict) -> dict[str, Any]:
    """Replace the formulation at the version the caller read."""
    return await update_versioned(db, Formulation, Formulation.course_id == course_id, version, values, _formulation)


async def insert_relationship(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Add a relationship to the inventory."""
    row = new_row(InventoryRelationship, values)
    await db.execute(sa.insert(InventoryRelationship).values(row))
    return {name: row[name] for name in INVENTORY_PUBLIC}


def _relationship(course_id: str, relationship_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(InventoryRelationship.id == relationship_id, InventoryRelationship.course_id == course_id)


async def get_relationship(db: AsyncConnection, course_id: str, relationship_id: str) -> dict[str, Any]:
    """One relationship of the course's inventory, or 404."""
    return await one_or_404(db, sa.select(*_inventory).where(_relationship(course_id, relationship_id)), "No such relationship in this inventory.")


async def list_relationships(db: AsyncConnection, course_id: str, page: Page) -> dict:
    """A page of the inventory."""
    query = sa.select(*_inventory).where(InventoryRelationship.course_id == course_id)
    return await fetch_page(db, query, InventoryRelationship.id, page)


async def update_relationship(db: AsyncConnection, course_id: str, relationship_id: str, version: int, changes: dict) -> dict:
    """Change a relationship at the version the caller read."""
    return await update_versioned(db, InventoryRelationship, _relationship(course_id, relationship_id), version, changes, _inventory)


async def delete_relationship(db: AsyncConnection, course_id: str, relationship_id: str, version: int) -> None:
    """Remove a relationship at the version the caller read."""
    await require_version(db, InventoryRelationship, _relationship(course_id, relationship_id), version)
    await db.execute(sa.delete(InventoryRelationship).where(_relationship(course_id, relationship_id)))


async def insert_event(db: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Add a timeline event."""
    row = new_row(TimelineEvent, values)
    await db.execute(sa.insert(TimelineEvent).values(row))
    return {name: row[name] for name in TIMELINE_PUBLIC}


async def list_events(db: AsyncConnection, course_id: str, page: Page) -> dict:
    """A page of the timeline in the order events were recorded."""
    query = sa.select(*_timeline).where(TimelineEvent.course_id == course_id)
    return await fetch_page(db, query, TimelineEvent.id, page)
