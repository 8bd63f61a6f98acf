"""Column helpers shared by every table."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from app.core import db as _db  # noqa: F401  (sets the naming convention before any table exists)
from app.core.ids import new_id, utcnow


def id_field() -> str:
    """A UUIDv7 string primary key."""
    return Field(default_factory=new_id, primary_key=True, max_length=36)


def org_field() -> str:
    """The owning organization: every tenant row carries it, indexed."""
    return Field(foreign_key="organization.id", max_length=36, index=True)


def created_at_field() -> datetime:
    """When the row was made (UTC)."""
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


def timestamp_field(nullable: bool = True) -> datetime | None:
    """A UTC timestamp column."""
    return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=nullable)


def json_field(default_factory=list):
    """A JSON column (lists of codes, details objects)."""
    return Field(default_factory=default_factory, sa_type=sa.JSON, nullable=False)
