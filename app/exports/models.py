"""Bulk Data export jobs and their files: in the database, so any API process serves any job's files."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field, org_field, timestamp_field


class BulkExport(SQLModel, table=True):
    """One ``$export`` request: what it asked for, who asked, how far the worker got, when it expires.

    ``position`` is the worker's resume point (the source it is on and the last id written), saved in
    the same transaction as each file part, so a worker killed mid-job leaves no gap and no repeat.
    """

    __tablename__ = "bulk_export"
    id: str = id_field()
    organization_id: str = org_field()
    requested_by_type: str = Field(max_length=16)
    requested_by_id: str = Field(max_length=36)
    whole_organization: bool  # the requester's reach when it asked (a clinician: their caseload)
    level: str = Field(max_length=8)  # system, patient, group
    group_id: str | None = Field(default=None, max_length=36)
    types: list[str] = json_field()
    since: datetime | None = timestamp_field()
    partial_manifests: bool = Field(default=False)  # allowPartialManifests: manifests of the files so far
    request_url: str = Field(max_length=2000)
    transaction_time: datetime = timestamp_field(nullable=False)
    status: str = Field(max_length=16, index=True)  # accepted, in-progress, completed, failed
    position: dict = json_field(dict)
    written: int = Field(default=0)
    error: str | None = Field(default=None, max_length=500)
    lease_owner: str | None = Field(default=None, max_length=64)
    leased_until: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    completed_at: datetime | None = timestamp_field()
    expires_at: datetime | None = timestamp_field()


class BulkExportFile(SQLModel, table=True):
    """One NDJSON file of an export: one resource type, up to a batch of resources, as one gzip member."""

    __tablename__ = "bulk_export_file"
    id: str = id_field()
    export_id: str = Field(foreign_key="bulk_export.id", ondelete="CASCADE", max_length=36, index=True)
    resource_type: str = Field(max_length=40)
    count: int
    manifest_page: int | None = Field(default=None)  # the manifest (1, 2, ...) that first listed the file
    content: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    created_at: datetime = created_at_field()
