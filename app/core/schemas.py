"""Base classes for request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from types import NoneType, UnionType
from typing import Any, ClassVar, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationInfo, field_validator
from pydantic_core import CoreSchema

T = TypeVar("T")


# The JSON types a scalar field takes: pydantic's lax mode would also read 0 as false or as 1970-01-01.
# (3.0 is a JSON integer; pydantic still refuses 3.5 for an int.)
_JSON_TYPES: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int, float), float: (int, float), date: (str,), datetime: (str,)}

_JSON_NAMES = {bool: "boolean", int: "integer", float: "number"}


def _scalar(annotation: Any) -> type | None:
    """The field's scalar type (``X`` or ``X | None``) when it is one of ``_JSON_TYPES``."""
    options = [a for a in get_args(annotation) if a is not NoneType] if get_origin(annotation) in (Union, UnionType) else [annotation]
    return options[0] if len(options) == 1 and options[0] in _JSON_TYPES else None


class StrictInput(BaseModel):
    """A request body: unknown fields are refused, so a typo never silently drops data."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value: object, info: ValidationInfo) -> object:
        kind = _scalar(cls.model_fields[info.field_name].annotation) if info.field_name else None
        if kind is not None and value is not None and type(value) not in _JSON_TYPES[kind]:
            raise ValueError(f"{info.field_name} must be a JSON {_JSON_NAMES.get(kind, 'string')}")
        return value


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

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        # Document what the validator enforces: a ``not_null`` field may be left out, never sent as null.
        schema = handler(core_schema)
        properties = handler.resolve_ref_schema(schema).get("properties", {})
        for name in cls.not_null:
            field = properties.get(name, {})
            options = [option for option in field.get("anyOf", ()) if option != {"type": "null"}]
            if "anyOf" in field and len(options) == 1:
                del field["anyOf"]
                field.pop("default", None)
                field.update(options[0])
        return schema

    def changes(self) -> dict:
        """The fields the client sent."""
        return self.model_dump(exclude_unset=True)
