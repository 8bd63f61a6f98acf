"""/metrics in Prometheus text by route template and status, and one JSON access-log line per request
with ids and codes only (never a token or a body)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.support.live import free_port
from tests.support.world import create_patient

ROOT = Path(__file__).resolve().parents[2]


def _sample(text: str, name: str, route: str, method: str, status: int, extra: str = "") -> float | None:
    labels = f'route="{route}",method="{method}",status="{status}"{extra}'
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_metrics_count_requests_by_route_template_and_status_without_a_token(client, world):
    patient = await create_patient(client, world.clinician)
    for _ in range(2):
        assert (await client.get(f"/v1/patients/{patient['id']}", headers=world.clinician.headers)).status_code == 200
    missing = str(uuid.uuid4())
    assert (await client.get(f"/v1/patients/{missing}", headers=world.clinician.headers)).status_code == 404
    assert (await client.get(f"/no/such/path/{missing}")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE ipt_requests_total counter" in text
    assert "# TYPE ipt_request_duration_seconds histogram" in text
    route = "/v1/patients/{patient_id}"
    before = _sample(text, "ipt_requests_total", route, "GET", 200)
    assert before is not None and before >= 2
    assert _sample(text, "ipt_requests_total", route, "GET", 404) >= 1
    assert _sample(text, "ipt_requests_total", "/v1/patients", "POST", 201) >= 1
    assert _sample(text, "ipt_request_duration_seconds_bucket", route, "GET", 200, ',le="+Inf"') == before
    assert _sample(text, "ipt_request_duration_seconds_bucket", route, "GET", 200, ',le="10.0"') <= before
    assert _sample(text, "ipt_request_duration_seconds_count", route, "GET", 200) == before
    assert _sample(text, "ipt_requests_total", "unmatched", "GET", 404) >= 1
    # Labels are templates: no id ever becomes a label (unbounded series, and ids are data).
    assert patient["id"] not in text and missing not in text

    assert (await client.get(f"/v1/patients/{patient['id']}", headers=world.clinician.headers)).status_code == 200
    after = _sample((await client.get("/metrics")).text, "ipt_requests_total", route, "GET", 200)
    assert after == before + 1


async def test_access_log_is_one_json_line_with_ids_and_no_token_or_body(client, world, caplog):
    marker = f"MARKER-{uuid.uuid4().hex}"
    token = world.clinician.headers["Authorization"].split()[1]
    caplog.set_level(logging.INFO, logger="ipt.access")
    created = await client.post("/v1/patients", json={"display_name": marker}, headers=world.clinician.headers)
    assert created.status_code == 201
    read = await client.get(f"/v1/patients/{created.json()['id']}?q={marker}", headers=world.clinician.headers)
    refused = await client.get("/v1/patients", headers={"Authorization": f"Bearer {marker}"})
    assert refused.status_code == 401

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ipt.access"]
    by_id = {line["request_id"]: line for line in lines}
    line = by_id[created.headers["x-request-id"]]
    assert (line["route"], line["method"], line["status"]) == ("/v1/patients", "POST", 201)
    assert line["principal_id"] == world.clinician.id
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    line = by_id[read.headers["x-request-id"]]
    assert (line["route"], line["status"], line["principal_id"]) == ("/v1/patients/{patient_id}", 200, world.clinician.id)
    line = by_id[refused.headers["x-request-id"]]
    assert (line["route"], line["status"], line["principal_id"]) == ("/v1/patients", 401, None)

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert marker not in text and token not in text


def test_ipt_serve_writes_the_access_log(app, database_url):
    """The real server prints the JSON lines (at IPT_LOG_LEVEL), not only a test's log capture."""
    from tests.support.world import bearer

    port = free_port()
    env = {**os.environ, "IPT_ENV": "test", "IPT_DATABASE_URL": database_url,
           "IPT_SECRET_KEY": app.state.settings.secret_key, "IPT_BACKGROUND_TASKS": "false",
           "IPT_RATE_LIMIT_PER_MINUTE": "0"}
    env.pop("IPT_LOG_LEVEL", None)
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    headers = bearer(app, str(uuid.uuid4()), "user", str(uuid.uuid4()), ["clinical:read"])
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        response = httpx.get(f"{base}/v1/me", headers=headers, timeout=10)
        assert response.status_code == 401
        request_id = response.headers["x-request-id"]
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    lines = []
    for raw in (out + err).decode().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    mine = [line for line in lines if isinstance(line, dict) and line.get("request_id") == request_id]
    assert len(mine) == 1, (out + err).decode()[-2000:]
    assert (mine[0]["route"], mine[0]["status"]) == ("/v1/me", 401)
    assert headers["Authorization"].split()[1] not in (out + err).decode()
