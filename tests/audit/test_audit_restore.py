"""A pg_dump restored into a fresh cluster, as the README says (its epoch set above the old one first), keeps every
chain verifiable, and new events are sealed there."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from app.audit import partitions
from app.audit import repository as audit_repository
from app.background import seal_everything_committed
from app.core.db import make_engine, transaction
from tests.audit.test_audit_partitions import event_at
from tests.conftest import require_postgres, test_settings
from tests.support.databases import migrate, postgres_database
from tests.support.infra import require_binary
from tests.support.live import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
AS_POSTGRES = ["runuser", "-u", "postgres", "--"]  # initdb and postgres refuse to run as root


async def _write_seal_verify(url: str, write: bool) -> tuple[int, list]:
    """Optionally write an event last month and one now, seal, verify: (sealed, problems)."""
    engine = make_engine(test_settings(url))
    try:
        if write:
            org, now = str(uuid.uuid4()), datetime.now(UTC)
            last_month = datetime(now.year - (now.month == 1), (now.month - 2) % 12 + 1, 5, tzinfo=UTC)
            async with transaction(engine, write=True) as db:
                await partitions.ensure_months(db, [partitions.month_of(last_month)])
            for at in (last_month, now):
                async with transaction(engine, write=True) as db:
                    await audit_repository.insert(db, event_at(org, at))
        sealed = await seal_everything_committed(engine, wait_seconds=120)
        async with transaction(engine, write=False) as db:
            return sealed, await audit_repository.verify(db)
    finally:
        await engine.dispose()


async def test_postgres_a_dump_restored_into_a_fresh_cluster_verifies_and_seals_new_events():
    require_postgres()
    pg_dump, psql = require_binary("pg_dump"), require_binary("psql")
    if not (BIN / "initdb").exists():
        require_binary("initdb")
    tmp_path = Path(tempfile.mkdtemp(prefix="ipt-restore-"))  # pytest's own is root's alone: postgres could not enter
    shutil.chown(tmp_path, "postgres")
    data, port, dump = tmp_path / "data", free_port(), tmp_path / "dump.sql"
    try:
        with postgres_database() as url:
            migrate(url)
            assert await _write_seal_verify(url, write=True) == (2, [])
            with psycopg.connect(url) as conn:
                epoch = conn.execute("SELECT pg_current_xact_id()::text::bigint >> 32").fetchone()[0]
            with dump.open("wb") as out:
                subprocess.run([pg_dump, "--no-owner", url], stdout=out, check=True, timeout=120)
        subprocess.run([*AS_POSTGRES, str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        # The README's step: the new cluster's transaction ids above the old one's, or the chains stall.
        subprocess.run([*AS_POSTGRES, str(BIN / "pg_resetwal"), "-e", str(epoch + 1), str(data)],
                       check=True, capture_output=True, timeout=60)
        subprocess.run([*AS_POSTGRES, str(BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(tmp_path / "log"), "-o",
                        f"-p {port} -k {tmp_path} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
        restored = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", restored, "-f", str(dump)], check=True, capture_output=True,
                       timeout=120)
        assert await _write_seal_verify(restored, write=False) == (0, [])  # intact as restored, partitions and all
        assert await _write_seal_verify(restored, write=True) == (2, [])  # and new events are chained on
    finally:
        subprocess.run([*AS_POSTGRES, str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(tmp_path, ignore_errors=True)
