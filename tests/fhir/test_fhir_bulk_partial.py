"""Bulk Data allowPartialManifests: manifests of the files written so far while a job runs, each fixed once
returned, linked page to page, every file in exactly one; the files they list can be downloaded at once."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from app.exports.models import BulkExport, BulkExportFile
from app.fhir import bulk
from app.fhir.bulk_worker import BulkWorker
from tests.fhir.test_fhir_bulk import MANIFEST_KEYS, download, drain, finished, kick_off
from tests.support.fhir import record_course


class Gate:
    """Lets the worker read one batch per ``open()`` (the worker itself, unchanged, does the rest)."""

    def __init__(self, monkeypatch) -> None:
        self.permits = asyncio.Semaphore(0)
        real = bulk.next_batch

        async def gated(*args, **kwargs):
            await self.permits.acquire()
            return await real(*args, **kwargs)

        monkeypatch.setattr(bulk, "next_batch", gated)

    def open(self, batches: int = 1) -> None:
        for _ in range(batches):
            self.permits.release()


async def _files(app, export_id: str) -> list[dict]:
    async with app.state.engine.connect() as db:
        query = sa.select(BulkExportFile.id, BulkExportFile.manifest_page).where(BulkExportFile.export_id == export_id)
        return [dict(r) for r in (await db.execute(query.order_by(BulkExportFile.id))).mappings()]


async def _written_files(app, export_id: str, at_least: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while len(files := await _files(app, export_id)) < at_least:
        assert time.monotonic() < deadline, f"the worker wrote {len(files)} files, not {at_least}"
        await asyncio.sleep(0.01)
    return files


async def test_partial_manifests_grow_by_links_and_never_change_once_returned(app, client, world, monkeypatch):
    await record_course(client, world)
    await drain(app)  # other tests' jobs: the gated worker below takes the oldest job first
    location = await kick_off(client, world.ehr, allowPartialManifests="true", _type="Patient,Observation")
    export_id = location.rsplit("/", 1)[1]
    gate = Gate(monkeypatch)
    settings = app.state.settings.model_copy(update={"bulk_export_batch": 1})
    worker = asyncio.create_task(BulkWorker(app.state.engine, settings).run_one())
    try:
        nothing = await client.get(location, headers=world.ehr.headers)  # nothing written yet: no manifest
        assert (nothing.status_code, nothing.json()["resourceType"]) == (202, "OperationOutcome")

        gate.open(2)
        await _written_files(app, export_id, 2)
        first = await client.get(location, headers=world.ehr.headers)
        assert first.status_code == 202 and first.headers["content-type"].startswith("application/json")
        assert "x-progress" in first.headers and "retry-after" in first.headers
        page_one = first.json()
        assert set(page_one) == MANIFEST_KEYS and len(page_one["output"]) == 2  # no link: nothing else yet
        listed = await download(client, world.ehr, page_one)  # served while the job runs
        assert set(listed) == {"Patient", "Observation"}

        gate.open(2)
        await _written_files(app, export_id, 4)
        again = (await client.get(location, headers=world.ehr.headers)).json()
        assert again["output"] == page_one["output"]  # unchanged, only linked on
        assert again["link"] == [{"relation": "next", "url": f"{location}?page=2"}]
        page_two = (await client.get(again["link"][0]["url"], headers=world.ehr.headers)).json()
        assert len(page_two["output"]) == 2 and not {o["url"] for o in page_two["output"]} & {o["url"] for o in page_one["output"]}

        gate.open(1)
        unlisted = [f for f in await _written_files(app, export_id, 5) if f["manifest_page"] is None]
        assert len(unlisted) == 1
        early = await client.get(f"{location}/files/{unlisted[0]['id']}", headers=world.ehr.headers)
        assert early.status_code == 404  # written, but no manifest has listed it yet
        assert (await client.get(f"{location}?page=4", headers=world.ehr.headers)).status_code == 404

        gate.open(10_000)
        await asyncio.wait_for(worker, 30)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)

    pages, url = [], location
    while url:
        response = await client.get(url, headers=world.ehr.headers)
        assert response.status_code == 200 and "expires" in response.headers, response.text
        pages.append(response.json())
        url = response.json().get("link", [{}])[0].get("url")
    assert pages[0]["output"] == page_one["output"] and pages[1]["output"] == page_two["output"]
    assert all(p["transactionTime"] == page_one["transactionTime"] and p["request"] == page_one["request"] for p in pages)
    urls = [o["url"] for p in pages for o in p["output"]]
    assert len(urls) == len(set(urls)) == len(await _files(app, export_id))  # every file in exactly one manifest
    whole = await finished(app, client, world.ehr, await kick_off(client, world.ehr, _type="Patient,Observation"))
    assert sum(o["count"] for p in pages for o in p["output"]) == sum(o["count"] for o in whole["output"])


async def test_a_job_without_partial_manifests_has_one_manifest_and_no_files_before_it(app, client, world):
    await record_course(client, world)
    location = await kick_off(client, world.ehr, _type="Patient")
    export_id = location.rsplit("/", 1)[1]
    assert (await client.get(location, headers=world.ehr.headers)).status_code == 202
    async with app.state.engine.begin() as db:  # a file stored by a worker still at work
        await db.execute(sa.update(BulkExport).where(BulkExport.id == export_id).values(status="in-progress"))
    manifest = await finished(app, client, world.ehr, location)
    async with app.state.engine.begin() as db:
        await db.execute(sa.update(BulkExport).where(BulkExport.id == export_id).values(status="in-progress"))
    running = await client.get(location, headers=world.ehr.headers)
    assert (running.status_code, running.json()["resourceType"]) == (202, "OperationOutcome")
    assert (await client.get(manifest["output"][0]["url"], headers=world.ehr.headers)).status_code == 404
    async with app.state.engine.begin() as db:
        await db.execute(sa.update(BulkExport).where(BulkExport.id == export_id).values(status="completed"))
    assert (await client.get(f"{location}?page=2", headers=world.ehr.headers)).status_code == 404


async def test_an_empty_export_with_partial_manifests_completes_with_an_empty_manifest(app, client, world):
    location = await kick_off(client, world.clinician, allowPartialManifests="true", _type="Encounter")
    manifest = await finished(app, client, world.clinician, location)  # a new clinician: no sessions
    assert manifest["output"] == [] and "link" not in manifest
