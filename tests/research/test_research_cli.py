"""`ipt export` writes the same bytes as the API (the same row generator) and audits itself as an operator's export."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.research.cli import ProgressBar
from tests.support.research import DATASETS, FORMATS, export

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).parent / "ipt"
IPT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "app.cli"]


def ipt(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
    env.update(IPT_ENV="test", IPT_DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    return subprocess.run([*IPT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


async def test_cli_export_writes_what_the_api_sends_and_is_audited(app, client, planted, database_url, tmp_path):
    world, _ = planted
    for dataset in DATASETS:
        for fmt in FORMATS:
            out = tmp_path / f"{dataset}.{fmt}"
            done = ipt(database_url, "export", dataset, "--org", world.org_id, "--out", str(out), "--format", fmt,
                       "--profile", "limited")
            assert done.returncode == 0, done.stderr
            assert done.stderr == ""  # no progress bar when stderr is not a terminal
            summary = json.loads(done.stdout)
            api = await export(client, world.researcher, dataset, format=fmt, profile="limited")
            assert out.read_bytes() == api.content
            assert summary == {"rows": 6 if dataset == "measures" else 2, "out": str(out), "profile": "limited",
                               "format": fmt}
            assert not out.with_name(out.name + ".part").exists()
    async with app.state.engine.connect() as db:
        events = (await db.execute(sa.text(
            "SELECT actor_type, action, resource_type, user_agent, details FROM audit_event "
            "WHERE organization_id = :o AND actor_type = 'operator' ORDER BY at"), {"o": world.org_id})).all()
    assert [(e.actor_type, e.action, e.resource_type, e.user_agent) for e in events] == [
        ("operator", "export", f"research_{d}", "ipt-cli") for d in DATASETS for _ in FORMATS]
    details = json.loads(events[0].details) if isinstance(events[0].details, str) else events[0].details
    assert details == {"dataset": "measures", "profile": "limited", "format": "ndjson", "filters": {},
                       "stage": "finished", "rows": 6, "via": "cli"}


async def test_cli_export_filters_and_refusals(client, world, planted, database_url, tmp_path):
    other, _ = planted
    out = tmp_path / "gad.ndjson"
    done = ipt(database_url, "export", "measures", "--org", other.org_id, "--out", str(out), "--instrument", "gad-7")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (await export(client, other.researcher, "measures", instrument="gad-7")).content
    refused = ipt(database_url, "export", "courses", "--org", world.org_id, "--out", str(tmp_path / "x"),
                  "--profile", "limited")
    assert refused.returncode == 1 and "data-use agreement" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    missing = ipt(database_url, "export", "courses", "--org", "00000000-0000-7000-8000-000000000000",
                  "--out", str(tmp_path / "y"))
    assert missing.returncode == 1 and "no organization" in missing.stderr


async def test_the_progress_bars_count_matches_the_rows_exported(app, planted):
    from app.research import service

    world, _ = planted
    for dataset, rows in (("measures", 6), ("courses", 2)):
        assert await service.count(app.state.engine, world.org_id, service.Export(dataset)) == rows
    only_gad = service.Export("courses", filters=service.ExportFilters(instrument="bdi-ii"))
    assert await service.count(app.state.engine, world.org_id, only_gad) == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("total", [1000, None])
def test_progress_bar_redraws_one_line_and_ends_it(total):
    stream = _Terminal()
    bar = ProgressBar(total, stream)
    bar.update(500, final=False)  # too soon after the start: not redrawn
    bar.update(1000, final=True)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\r") == 1
    assert ("100%" in text and "1,000/1,000 rows" in text) if total else "1,000 rows" in text
