"""Base classes for request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

T = TypeVar("T")


class StrictInput(BaseModel):
    """A request body: unknown fields are refused, so a typo never silently drops data."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Versioned(BaseModel):
    """Fields every stored resource reads back with."""

    id: str
    version: int
    created_at: datetime


class ListOf(BaseModel, Generic[T]):
    """A cursor-paginated list."""

    data: list[T]
    next_cursor: str | None


class Problem(BaseModel):
    """An RFC 9457 problem: clients branch on ``code``."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str


class StrictPatch(StrictInput):
    """A partial update: only fields sent change; ``not_null`` fields may be omitted but not nulled."""

    not_null: ClassVar[tuple[str, ...]] = ()

    @field_validator("*")
    @classmethod
    def _refuse_nulls(cls, value: object, info: ValidationInfo) -> object:
        # A field validator (not a model validator) so the error's loc names the field.
        if value is None and info.field_name in cls.not_null:
            raise ValueError(f"{info.field_name} may not be null")
        return value

    def changes(self) -> dict:
        """The fields the client sent."""
        return self.model_dump(exclude_unset=True)
