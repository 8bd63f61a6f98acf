"""The de-identified research export (research:export) and its key rotation (org:admin)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from app.audit import context as audit_context
from app.audit import writer as audit_writer
from app.audit.context import AuditNote
from app.core.errors import RateLimited
from app.core.http import JSON
from app.core.openapi import AUTH, errors
from app.deps import Db, OrgAdmin, Principal, scoped
from app.research import columns, service
from app.research.encoding import MEDIA_TYPES
from app.research.schemas import DictionaryPublic, ExportParams
from app.routing import api_router

router = api_router(prefix="/v1/research", tags=["research"])
Researcher = Annotated[Principal, scoped("research:export")]
log = logging.getLogger("ipt.research")

_PROFILE_HEADER = {"X-Export-Profile": {"description": "The de-identification profile of the export.",
                                        "schema": {"type": "string", "enum": list(columns.PROFILES)}}}
STREAMED = {200: {
    "description": "The export, streamed: NDJSON (one object per line) or CSV (header row, CRLF). "
                   "GET /v1/research/dictionary describes every column.",
    "headers": _PROFILE_HEADER,
    "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}},
}}


class ExportsBusy(RateLimited):
    """Too many exports streaming in this process already."""

    def __init__(self) -> None:
        super().__init__(10)
        self.detail = "Too many research exports are running; retry after the current ones finish."


class ExportSlots:
    """How many exports may stream at once in one process.

    Each export holds a database connection for as long as it streams (seconds to minutes), so
    without a cap a researcher's parallel exports could take the whole pool from clinical traffic.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.active = limit, 0

    def take(self) -> Callable[[], None]:
        """A slot, or 429 rate_limited; the returned function gives it back (once, however often it is called)."""
        if self.active >= self.limit:
            raise ExportsBusy()
        self.active += 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back, self.active = True, self.active - 1

        return give_back


def _slots(request: Request) -> ExportSlots:
    state = request.app.state
    if getattr(state, "research_exports", None) is None:
        state.research_exports = ExportSlots(max(1, state.settings.db_pool_size // 4))
    return state.research_exports


class ExportResponse(StreamingResponse):
    """A streamed body whose generator is always closed, also when the client goes away mid-stream.

    Starlette leaves an abandoned body iterator suspended; closing it here (shielded from the
    cancellation that ended the stream) returns the export's database connection to the pool at
    once and writes the export's closing audit event. The export's slot is given back then, or,
    should the response never be sent, when it is garbage-collected.
    """

    def __init__(self, content: AsyncIterator[bytes], *, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close
        weakref.finalize(self, on_close)

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.body_iterator.aclose()  # type: ignore[attr-defined]
                finally:
                    self.on_close()


async def _export(request: Request, db: Db, researcher: Principal, dataset: str, params: ExportParams) -> Response:
    filters = service.ExportFilters(params.instrument, params.protocol, params.started_year_from, params.started_year_to)
    export = service.Export(dataset, params.profile, params.format, filters)
    key = await service.export_key(db, researcher.organization_id, export)
    give_back = _slots(request).take()
    resource_type = f"research_{dataset}"
    # This event (written by the pipeline as the route returns) records that the export started;
    # the row count is known only at the end, so the stream writes a second event then.
    audit_context.note(resource_type=resource_type, action="export", stage="started", **export.audit_details())
    engine, template = request.app.state.engine, request.url.path

    async def body():
        progress = service.Progress()
        try:
            async for chunk in service.chunks(engine, researcher.organization_id, key, export, progress):
                yield chunk
        finally:
            details = {"action": "export", **service.finished_details(export, progress)}
            event = audit_writer.event_for(request, AuditNote(resource_type=resource_type, details=details), 200, template)
            with anyio.CancelScope(shield=True):
                try:
                    await service.record_event(engine, event)
                except Exception as exc:  # noqa: BLE001 - the stream's own error, if any, matters more
                    log.warning("could not record the end of a research export: %s", type(exc).__name__)

    extension = "ndjson" if params.format == "ndjson" else "csv"
    headers = {
        "X-Export-Profile": params.profile,
        "Content-Disposition": f'attachment; filename="ipt-research-{dataset}-{params.profile}.{extension}"',
        "Cache-Control": "no-store",
    }
    return ExportResponse(body(), on_close=give_back, media_type=MEDIA_TYPES[params.format], headers=headers)


@router.get("/measures", response_class=Response, responses={**STREAMED, **errors(*AUTH)})
async def export_measures(request: Request, db: Db, researcher: Researcher,
                          params: Annotated[ExportParams, Query()]) -> Response:
    """One de-identified row per measure, streamed; limited needs the organization's data-use agreement (403)."""
    return await _export(request, db, researcher, "measures", params)


@router.get("/courses", response_class=Response, responses={**STREAMED, **errors(*AUTH)})
async def export_courses(request: Request, db: Db, researcher: Researcher,
                         params: Annotated[ExportParams, Query()]) -> Response:
    """One de-identified row per course with how it ended and its outcomes per instrument, streamed."""
    return await _export(request, db, researcher, "courses", params)


@router.get("/dictionary", response_model=DictionaryPublic, responses=errors(*AUTH))
async def get_dictionary(_: Researcher) -> JSON:
    """Every exported column: its meaning, type, codes, and which profiles and formats carry it."""
    return JSON(columns.dictionary())


@router.post("/export-key/rotate", status_code=204, responses=errors(*AUTH))
async def rotate_export_key(db: Db, admin: OrgAdmin) -> Response:
    """Replace the organization's export key: new pseudonyms from the next export on (the key is never shown)."""
    await service.rotate_key(db, admin.organization_id)
    audit_context.note(resource_type="research_export_key", resource_id=admin.organization_id, action="update")
    return Response(status_code=204)
