"""Bulk Data with real processes: a worker killed mid-job (SIGKILL) is resumed by another with every row once,
and a job kicked off at one API process is polled and downloaded from another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa

from app.core.ids import new_id
from app.exports.models import BulkExport
from app.main import create_app
from app.measures.models import Measure
from tests.conftest import test_settings
from tests.fhir.test_fhir_bulk import ASYNC, kick_off
from tests.support.databases import throwaway_database
from tests.support.fhir import record_course
from tests.support.live import ROOT, live_server
from tests.support.pgbouncer import app_environment
from tests.support.world import make_world

EXTRA_MEASURES = 1500


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh(request, tmp_path):
    """A migrated database of its own (its workers must not touch the session's): its URL, an app on it, an
    organization and an in-process client."""
    from tests.conftest import require_postgres
    from tests.support.databases import migrate

    if request.param == "postgres":
        require_postgres()
    with throwaway_database(request.param, tmp_path) as url:
        migrate(url)
        app = create_app(test_settings(url))
        world = await make_world(app)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield url, app, world, client
        await app.state.engine.dispose()


@contextmanager
def ipt_worker(url: str, secret: str, **env: str) -> Iterator[subprocess.Popen]:
    """``ipt worker`` on the database, in its own process group; killed on exit if still running."""
    environment = {**os.environ, **app_environment(url), "IPT_ENV": "test", "IPT_SECRET_KEY": secret,
                   "IPT_WEBHOOK_WORKER": "false", **env}
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _job(app, export_id: str) -> dict:
    async with app.state.engine.connect() as db:
        return dict((await db.execute(sa.select(BulkExport).where(BulkExport.id == export_id))).mappings().one())


async def _copy_measures(app, course_id: str, copies: int) -> list[str]:
    """Many more measures of the course, as copies of one recorded through the API (the API would take minutes)."""
    async with app.state.engine.begin() as db:
        row = dict((await db.execute(sa.select(Measure).where(Measure.course_id == course_id).limit(1))).mappings().one())
        rows = [{**row, "id": new_id()} for _ in range(copies)]
        await db.execute(sa.insert(Measure), rows)
        return [r[0] for r in (await db.execute(sa.select(Measure.id).where(Measure.course_id == course_id))).all()]


async def test_a_worker_killed_mid_export_is_resumed_by_another_with_every_row_once(fresh):
    url, app, world, client = fresh
    secret = app.state.settings.secret_key
    recorded = await record_course(client, world)
    measure_ids = await _copy_measures(app, recorded.course["id"], EXTRA_MEASURES)
    location = await kick_off(client, world.ehr, _type="QuestionnaireResponse,Observation")
    export_id = location.rsplit("/", 1)[1]
    settings = {"IPT_BULK_EXPORT_BATCH": "10", "IPT_BULK_EXPORT_LEASE_SECONDS": "1"}

    with ipt_worker(url, secret, **settings) as first:
        deadline = time.monotonic() + 60
        while (job := await _job(app, export_id))["written"] < 200:
            assert time.monotonic() < deadline, "the first worker wrote nothing within 60 s"
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    job = await _job(app, export_id)
    assert job["status"] == "in-progress" and 0 < job["written"] < 2 * len(measure_ids), job["written"]

    with ipt_worker(url, secret, **settings):
        deadline = time.monotonic() + 120
        while (status := await client.get(location, headers=world.ehr.headers)).status_code == 202:
            assert time.monotonic() < deadline, "the second worker did not finish within 120 s"
            time.sleep(0.1)
    assert status.status_code == 200, status.text
    seen: dict[str, list[str]] = {"QuestionnaireResponse": [], "Observation": []}
    for output in status.json()["output"]:
        body = (await client.get(output["url"], headers=world.ehr.headers)).text
        seen[output["type"]] += [json.loads(line)["id"] for line in body.splitlines()]
    assert sorted(seen["QuestionnaireResponse"]) == sorted(measure_ids)  # each once: none missing, none twice
    assert sorted(seen["Observation"]) == sorted(f"{m}-total" for m in measure_ids)


async def test_any_api_process_answers_for_a_job_another_accepted(fresh):
    url, app, world, client = fresh
    secret = app.state.settings.secret_key
    await record_course(client, world)
    with live_server(url, secret, IPT_BULK_EXPORT_WORKER="true") as first, live_server(url, secret) as second:
        kicked = httpx.get(f"{first}/fhir/r4/Patient/$export", headers={**world.ehr.headers, **ASYNC})
        assert kicked.status_code == 202, kicked.text
        location = kicked.headers["content-location"].replace(first, second)  # the status, from the other process
        deadline = time.monotonic() + 30
        while (status := httpx.get(location, headers=world.ehr.headers)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status.status_code == 200, status.text
        for output in status.json()["output"]:
            file_url = output["url"].replace(first, second)
            response = httpx.get(file_url, headers={**world.ehr.headers, "Accept": "application/fhir+ndjson"})
            assert response.status_code == 200 and len(response.text.splitlines()) == output["count"]


def follow_partial_manifests(status_url: str, headers: dict) -> dict[str, list[str]]:
    """A Bulk Data 3.0 client: download each manifest's files as soon as it lists them, follow its link, poll
    a manifest with no link until it has one or answers 200. The ids it downloaded, by type."""
    seen: dict[str, list[str]] = {}
    downloaded, url = set(), status_url
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "the export did not finish within 120 s"
        response = httpx.get(url, headers=headers)
        assert response.status_code in (200, 202), response.text
        manifest = response.json() if response.headers["content-type"].startswith("application/json") else {}
        for output in manifest.get("output", []):
            if output["url"] not in downloaded:
                downloaded.add(output["url"])
                lines = httpx.get(output["url"], headers={**headers, "Accept": "application/fhir+ndjson"}).text.splitlines()
                assert len(lines) == output["count"]
                seen.setdefault(output["type"], []).extend(json.loads(line)["id"] for line in lines)
        if manifest.get("link"):
            url = manifest["link"][0]["url"]
        elif response.status_code == 200:
            return seen
        else:
            time.sleep(0.05)


async def test_a_partial_manifest_client_following_links_while_the_export_runs_gets_every_row_once(fresh):
    url, app, world, client = fresh
    secret = app.state.settings.secret_key
    recorded = await record_course(client, world)
    measure_ids = await _copy_measures(app, recorded.course["id"], EXTRA_MEASURES)
    with live_server(url, secret, IPT_BULK_EXPORT_WORKER="true", IPT_BULK_EXPORT_BATCH="25") as base:
        kicked = httpx.get(f"{base}/fhir/r4/$export", headers={**world.ehr.headers, **ASYNC},
                           params={"_type": "QuestionnaireResponse,Observation", "allowPartialManifests": "true"})
        assert kicked.status_code == 202, kicked.text
        # How many manifests it takes depends on how fast the worker runs; tests/fhir/test_fhir_bulk_partial.py
        # holds the worker between batches to check each state of them.
        seen = follow_partial_manifests(kicked.headers["content-location"], world.ehr.headers)
    assert sorted(seen["QuestionnaireResponse"]) == sorted(measure_ids)  # each once: none missing, none twice
    assert sorted(seen["Observation"]) == sorted(f"{m}-total" for m in measure_ids)
