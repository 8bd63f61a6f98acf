"""FHIR Bulk Data Access 2.0: ``$export`` kick-off at system, Patient and Group level, status, cancel, files.

Everything needs the requester's bearer token (``clinical:read``, or a SMART system read scope):
a job, its status and its files are the requester's alone; anyone else gets a 404.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import Annotated

from fastapi import Query, Request
from isal import isal_zlib
from starlette.responses import Response

from app.audit import context as audit
from app.core.errors import NotFound, RateLimited
from app.core.ids import as_utc, rfc3339, utcnow
from app.core.negotiation import negotiate
from app.deps import ClinicalReader, Db, Principal
from app.exports import repository as jobs
from app.fhir import bulk
from app.fhir.errors import FhirJSON
from app.fhir.router import PREFIX, base_url
from app.fhir.schemas import FhirBulkManifest, FhirOperationOutcome, outcomes
from app.groups import repository as groups
from app.identity import repository as identity
from app.routing import api_router

router = api_router(prefix=PREFIX, tags=["fhir"], default_response_class=FhirJSON)
NDJSON = "application/fhir+ndjson"
RETRY_AFTER_SECONDS = 2
KICK_OFF = {202: {"description": "Accepted: poll the Content-Location URL for the job's status.",
                  "headers": {"Content-Location": {"schema": {"type": "string"}, "description": "The status URL."}},
                  "model": FhirOperationOutcome, "content": {"application/fhir+json": {}}},
            **outcomes(400, 401, 403, 404, 422, 429, 503)}
KICK_OFF[400]["description"] = "No Prefer: respond-async, or a parameter that is wrong or not supported (issue code invalid)."
STATUS = {200: {"description": "Completed: the manifest of the job's files (application/json, as Bulk Data says).",
                "model": FhirBulkManifest, "content": {"application/json": {}}},
          202: {"description": "In progress (X-Progress says how far; retry after Retry-After seconds): an "
                                "OperationOutcome, or with allowPartialManifests a manifest of the files so far.",
                "headers": {"X-Progress": {"schema": {"type": "string"}}, "Retry-After": {"schema": {"type": "integer"}}},
                "model": FhirOperationOutcome,
                "content": {"application/fhir+json": {},
                            "application/json": {"schema": {"$ref": "#/components/schemas/FhirBulkManifest"}}}},
          **outcomes(401, 403, 404, 422, 429, 500, 503)}
# As the chart: application/octet-stream (the same bytes) is declared too, for generators that know no NDJSON.
FILE_TYPES = (NDJSON, "application/octet-stream")
FILE = {200: {"description": "One NDJSON file of the export: one resource per line.",
              "content": {NDJSON: {"schema": {"type": "string"}},
                          "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **outcomes(401, 403, 404, 422, 429, 503, by_reference=True)}


def _parameters(level: str) -> dict:
    """The kick-off's header and parameters in the contract (app.fhir.bulk.parse reads and checks them)."""
    types = "|".join(bulk.LEVEL_TYPES[level])
    return {"parameters": [
        {"name": "Prefer", "in": "header", "required": True,
         "description": "respond-async (required); handling=lenient ignores parameters that are not supported.",
         "schema": {"type": "string", "pattern": "^respond-async(, ?handling=(strict|lenient))?$"}},
        {"name": "_type", "in": "query", "required": False, "description": "Resource types, comma-separated.",
         "schema": {"type": "string", "pattern": f"^({types})(,({types}))*$"}},
        {"name": "_since", "in": "query", "required": False,
         "description": "Only resources changed at or after this instant (a FHIR instant, with a zone).",
         "schema": {"type": "string", "format": "date-time",
                    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"}},
        {"name": "_outputFormat", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(bulk.OUTPUT_FORMATS)}},
        {"name": "allowPartialManifests", "in": "query", "required": False,
         "description": "true: while the export runs, its status answers 202 with a manifest of the files written so far.",
         "schema": {"type": "boolean", "default": False}},
    ]}


def _information(text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational",
                                                           "details": {"text": text}}]}


async def _is_ipt_group(db: Db, principal: Principal, group_id: str) -> bool:
    try:
        await groups.get(db, principal, group_id)
    except NotFound:
        return False
    return True


async def _kick_off(request: Request, db: Db, principal: Principal, level: str, group_id: str | None = None) -> FhirJSON:
    wanted = bulk.parse(level, dict(request.query_params), request.headers.get("prefer"))
    if group_id is not None and await _is_ipt_group(db, principal, group_id):
        level = "members"  # a group IPT group in reach: its members
    elif group_id is not None:
        # Else a Group is a clinician's caseload; a clinician reaches only their own.
        mine = principal.sees_whole_organization or group_id == principal.id
        if not mine or not await identity.user_is_clinician(db, principal.organization_id, group_id):
            raise NotFound("No such Group.")
    settings = request.app.state.settings
    if await jobs.active_count(db, principal.organization_id, principal.kind, principal.id) >= settings.bulk_export_max_active:
        raise RateLimited(30)
    job = await jobs.create(db, {
        "organization_id": principal.organization_id, "requested_by_type": principal.kind,
        "requested_by_id": principal.id, "whole_organization": principal.sees_whole_organization, "level": level,
        "group_id": group_id, "types": list(wanted.types), "since": wanted.since,
        "partial_manifests": wanted.partial_manifests, "request_url": str(request.url)[:2000],
        "transaction_time": utcnow(),
    })
    audit.note(resource_type="bulk_export", resource_id=job["id"], level=level, types=list(wanted.types))
    request.app.state.bulk_wake.set()
    location = f"{base_url(request)}/bulk/{job['id']}"
    return FhirJSON(_information("The export has been accepted."), status_code=202, headers={"Content-Location": location})


@router.get("/$export", status_code=202, responses=KICK_OFF, openapi_extra=_parameters("system"))
async def export_system(request: Request, db: Db, principal: ClinicalReader) -> FhirJSON:
    """Start a system-level export of everything in the caller's reach (Prefer: respond-async)."""
    return await _kick_off(request, db, principal, "system")


@router.get("/Patient/$export", status_code=202, responses=KICK_OFF, openapi_extra=_parameters("patient"))
async def export_patients(request: Request, db: Db, principal: ClinicalReader) -> FhirJSON:
    """Start an export of every patient in the caller's reach and their compartment (Prefer: respond-async)."""
    return await _kick_off(request, db, principal, "patient")


@router.get("/Group/{group_id}/$export", status_code=202, responses=KICK_OFF, openapi_extra=_parameters("group"))
async def export_group(group_id: str, request: Request, db: Db, principal: ClinicalReader) -> FhirJSON:
    """Start an export of a group IPT group's members, or of one clinician's caseload (a Group id that is the
    clinician's Practitioner id)."""
    return await _kick_off(request, db, principal, "group", group_id)


async def _job(db: Db, principal: Principal, export_id: str) -> dict:
    audit.note(resource_type="bulk_export", resource_id=export_id)
    return await jobs.get(db, export_id, principal.organization_id, principal.kind, principal.id)


@router.get("/bulk/{export_id}", responses=STATUS)
async def export_status(export_id: str, request: Request, db: Db, principal: ClinicalReader,
                        page: Annotated[int, Query(ge=1, le=1_000_000, description="A partial manifest's number "
                                                   "(allowPartialManifests: its link to the next one)")] = 1) -> FhirJSON:
    """An export's status: 202 while it runs, the manifest when complete, an OperationOutcome if it failed.

    With allowPartialManifests, 202 carries a manifest of the files written so far once there are any.
    """
    job = await _job(db, principal, export_id)
    if job["status"] == "failed":
        return FhirJSON({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "exception", "details": {"text": job["error"] or "The export failed."}}]},
            status_code=500)
    completed = job["status"] == "completed"
    progress = f"{job['status']}: {job['written']} resources written"
    in_progress = {"X-Progress": progress, "Retry-After": str(RETRY_AFTER_SECONDS)}
    if job["partial_manifests"]:
        found = await jobs.manifest_page(db, export_id, page)
        if found is None:
            raise NotFound("No such manifest of this export.")
        files, more = found
    elif page != 1:
        raise NotFound("No such manifest of this export (it did not ask for allowPartialManifests).")
    else:
        files, more = (await jobs.files(db, export_id) if completed else []), False
    if not completed and not files:
        return FhirJSON(_information(progress), status_code=202, headers=in_progress)
    base = base_url(request)
    output = [{"type": f["resource_type"], "url": f"{base}/bulk/{export_id}/files/{f['id']}", "count": f["count"]}
              for f in files]
    audit.note(files=len(output), page=page)
    manifest = {"transactionTime": rfc3339(job["transaction_time"]), "request": job["request_url"],
                "requiresAccessToken": True, "output": output, "error": []}
    if more:
        manifest["link"] = [{"relation": "next", "url": f"{base}/bulk/{export_id}?page={page + 1}"}]
    if not completed:
        return FhirJSON(manifest, status_code=202, media_type="application/json", headers=in_progress)
    expires = format_datetime(as_utc(job["expires_at"]), usegmt=True)
    return FhirJSON(manifest, media_type="application/json", headers={"Expires": expires})


@router.delete("/bulk/{export_id}", status_code=202, responses={202: {"description": "Cancelled, and its files deleted."},
                                                                 **outcomes(401, 403, 404, 422, 429, 503)})
async def cancel_export(export_id: str, db: Db, principal: ClinicalReader) -> FhirJSON:
    """Cancel an export, or delete a finished one's files; its status is a 404 from then on."""
    audit.note(resource_type="bulk_export", resource_id=export_id)
    await jobs.delete(db, export_id, principal.organization_id, principal.kind, principal.id)
    return FhirJSON(_information("The export has been cancelled and its files deleted."), status_code=202)


@router.get("/bulk/{export_id}/files/{file_id}", responses=FILE, response_class=Response)
async def export_file(export_id: str, file_id: str, request: Request, db: Db, principal: ClinicalReader) -> Response:
    """One NDJSON file of a completed export."""
    job = await _job(db, principal, export_id)
    # A running job's files are served once a partial manifest has listed them (allowPartialManifests).
    listed_only = job["status"] != "completed"
    if listed_only and not job["partial_manifests"]:
        raise NotFound("No such file in this export.")
    content = await jobs.file_content(db, export_id, file_id, listed_only)  # one gzip member (app.fhir.bulk_worker)
    audit.note(action="export", file=file_id)
    media_type = negotiate(request.headers.get("accept"), FILE_TYPES)
    headers = {"Cache-Control": "no-store", "Vary": "Accept, Accept-Encoding"}
    if accepts_gzip(request.headers.get("accept-encoding")):
        return Response(content, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(isal_zlib.decompress(content, 47), media_type=media_type, headers=headers)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether Accept-Encoding admits gzip (RFC 9110 12.5.3: ``gzip`` or ``*`` with a weight above 0)."""
    weights = {}
    for part in (accept_encoding or "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if coding:
            weights[coding.strip()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0

