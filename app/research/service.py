"""Research export use cases: the profile gate, the streamed rows (API and CLI alike), the export's audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.audit import writer as audit
from app.core.db import transaction
from app.core.errors import Forbidden
from app.identity import repository as identity
from app.research import repository
from app.research.columns import columns
from app.research.encoding import encoder
from app.research.pseudonyms import Pseudonymizer
from app.research.repository import ExportFilters
from app.research.rows import CourseRows, MeasureRows


class DataUseAgreementRequired(Forbidden):
    """The limited profile asked for by an organization without a recorded data-use agreement."""

    code, title = "data_use_agreement_required", "Data-use agreement required"


@dataclass(frozen=True, slots=True)
class Export:
    """One export: which dataset, under which profile, in which format, narrowed how."""

    dataset: str
    profile: str = "safe_harbor"
    format: str = "ndjson"
    filters: ExportFilters = field(default_factory=ExportFilters)

    def audit_details(self) -> dict[str, Any]:
        """What the audit log keeps about the export (no clinical values)."""
        return {"dataset": self.dataset, "profile": self.profile, "format": self.format,
                "filters": self.filters.as_dict()}


@dataclass(slots=True)
class Progress:
    """Rows written so far, and whether the export reached its end."""

    rows: int = 0
    complete: bool = False


async def export_key(db: AsyncConnection, organization_id: str, export: Export) -> str:
    """The organization's export key for this export; 403 data_use_agreement_required for 'limited' without one."""
    key, data_use_agreement = await identity.research_settings(db, organization_id)
    if export.profile == "limited" and not data_use_agreement:
        raise DataUseAgreementRequired(
            "The limited profile needs a data-use agreement: an admin records it with PATCH /v1/organization "
            '{"data_use_agreement": true}. The safe_harbor profile needs none.'
        )
    return key


async def rotate_key(db: AsyncConnection, organization_id: str) -> None:
    """A new export key: pseudonyms change from the next export on, and old ones can no longer be reproduced."""
    await identity.rotate_research_export_key(db, organization_id)


async def chunks(engine: AsyncEngine, organization_id: str, key: str, export: Export,
                 progress: Progress | None = None) -> AsyncIterator[bytes]:
    """The export as chunks of bytes: the CSV header, then one chunk per batch of rows.

    Reads in a transaction of its own (the request's has committed before a streamed body is
    sent) through a server-side cursor, so memory holds one batch, never the whole export; the
    connection goes back to the pool when the stream ends, fails or is abandoned.
    """
    progress = progress if progress is not None else Progress()
    cols = columns(export.dataset, export.profile, export.format)
    write = encoder(export.format, cols, export.dataset)
    pseudonym = Pseudonymizer(key)
    rows = MeasureRows(pseudonym, export.profile) if export.dataset == "measures" else CourseRows(pseudonym, export.profile)
    header = write.header()
    if header:
        yield header
    async with transaction(engine, write=False) as db:
        async for batch in repository.stream(db, export.dataset, organization_id, export.filters):
            pairs = rows.batch(batch)
            if pairs:
                progress.rows += len(pairs)
                yield write.encode(pairs)
    if isinstance(rows, CourseRows) and (pairs := rows.finish()):
        progress.rows += len(pairs)
        yield write.encode(pairs)
    progress.complete = True


async def count(engine: AsyncEngine, organization_id: str, export: Export) -> int:
    """How many rows the export would have now (the CLI's progress bar)."""
    async with transaction(engine, write=False) as db:
        return await repository.count(db, export.dataset, organization_id, export.filters)


def finished_details(export: Export, progress: Progress) -> dict[str, Any]:
    """The details of the event that closes an export: rows written and whether it ran to the end."""
    return {**export.audit_details(), "stage": "finished" if progress.complete else "interrupted",
            "rows": progress.rows}


async def record_event(engine: AsyncEngine, event: dict[str, Any]) -> None:
    """Append an audit event in a transaction of its own (the export's end comes after the request's)."""
    async with transaction(engine, write=True) as db:
        await audit.record(db, event)
