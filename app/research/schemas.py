"""Research export query parameters and the data dictionary's shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.courses.schemas import ProtocolId
from app.measures.schemas import InstrumentId

Profile = Literal["safe_harbor", "limited"]
Format = Literal["ndjson", "csv"]


class ExportParams(BaseModel):
    """An export's query: format, profile and filters; an unknown parameter is a 422, so a typo never widens it."""

    model_config = ConfigDict(extra="forbid")
    format: Format = Field(default="ndjson", description="ndjson (one JSON object per line) or csv (RFC 4180).")
    profile: Profile = Field(default="safe_harbor", description="safe_harbor, or limited (needs a data-use agreement).")
    instrument: InstrumentId | None = Field(default=None, description="Measures of this instrument only; for courses, "
                                            "courses with at least one administration of it.")
    protocol: ProtocolId | None = None
    started_year_from: int | None = Field(default=None, ge=1900, le=2999, description="Courses started in this year or later.")
    started_year_to: int | None = Field(default=None, ge=1900, le=2999, description="Courses started in this year or earlier.")

    @model_validator(mode="after")
    def _years_in_order(self) -> ExportParams:
        if None not in (self.started_year_from, self.started_year_to) and self.started_year_from > self.started_year_to:
            raise ValueError("started_year_from must not be after started_year_to")
        return self


class ColumnPublic(BaseModel):
    """One exported column."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "array<integer>", "integer|string"]
    meaning: str
    nullable: bool
    values: list[str] | None = Field(description="The codes the column can hold; null when it is not a code.")
    profiles: list[Profile] = Field(description="The profiles whose exports carry the column.")
    formats: list[Format] = Field(description="The formats that carry it ('items' is spread over item_N in CSV).")


class DatasetPublic(BaseModel):
    """One export and its columns, in the order they are written."""

    name: Literal["measures", "courses"]
    path: str
    description: str
    columns: list[ColumnPublic]


class Described(BaseModel):
    """A profile or a format."""

    name: str
    description: str


class DictionaryPublic(BaseModel):
    """Every column of every research export: meaning, type, and which profiles and formats have it."""

    profiles: list[Described]
    formats: list[Described]
    datasets: list[DatasetPublic]
