"""A private PostgreSQL cluster for the fault tests: theirs to stop, start and starve.

The shared server on 5432 is never touched: other engineers' tests run on it. The cluster is made
with ``initdb`` in a temporary directory, run as the ``postgres`` OS user when the tests run as root
(PostgreSQL refuses to run as root), on a free loopback port with its socket in the same directory.
It keeps PostgreSQL's default ``synchronous_commit = on``: the SIGKILL test checks durability.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import psycopg
import pytest

from app.main import create_app
from tests.conftest import test_settings
from tests.support.clinic import open_course
from tests.support.databases import REQUIRE_POSTGRES, migrate
from tests.support.infra import require_binary
from tests.support.live import free_port
from tests.support.pgbouncer import pgbouncer
from tests.support.world import World, make_world

DATABASE = "ipt_faults"


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivateCluster:
    """One initdb'd cluster: ``stop()`` and ``start()`` are the outage."""

    def __init__(self, root: Path, bin_dir: Path, port: int) -> None:
        self.root, self.bin_dir, self.port = root, bin_dir, port
        self.data = root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:] if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: every session is disconnected at once) and return once it is down."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped."""
        if not self.running():
            self.start()


@pytest.fixture(scope="session")
def private_cluster() -> Iterator[PrivateCluster]:
    """A migrated database on a private PostgreSQL cluster, removed at the end of the session."""
    bin_dir = _binaries()
    if bin_dir is None:
        if REQUIRE_POSTGRES:  # CI: the PostgreSQL half must run
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: the fault tests were skipped")
    root = Path(tempfile.mkdtemp(prefix="ipt-faults-pg-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    cluster = PrivateCluster(root, bin_dir, free_port())
    try:
        cluster.init()
        cluster.start()
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        migrate(cluster.url)
        yield cluster
    finally:
        try:
            if cluster.running():
                cluster.stop("immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(private_cluster: PrivateCluster) -> Iterator[PrivateCluster]:
    """The private cluster, running at the start of the test and started again if the test stopped it."""
    private_cluster.ensure_running()
    yield private_cluster
    private_cluster.ensure_running()


@pytest.fixture(params=["direct", "pgbouncer"])
def served_from(request: pytest.FixtureRequest, cluster: PrivateCluster) -> Iterator[str]:
    """The database URL the server under test is given: the cluster itself, or a PgBouncer (transaction mode) in front of it."""
    if request.param == "direct":
        yield cluster.url
        return
    # A request waits for a server at most as long as the tests' servers wait for a pooled connection (2 s).
    with pgbouncer(cluster.url, binary=require_binary("pgbouncer"), query_wait_timeout=2) as url:
        yield url


@dataclass
class Clinic:
    """An organization on the private database, the key its tokens are signed with, and open courses."""

    secret_key: str
    world: World
    courses: list[dict] = field(default_factory=list)


def make_clinic(url: str, courses: int) -> Clinic:
    """A new organization and ``courses`` open courses (started today, so every write can be dated today)."""

    async def build() -> Clinic:
        app = create_app(test_settings(url, background_tasks=False))
        try:
            world = await make_world(app)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                opened = [await open_course(http, world.clinician, started_days_ago=0) for _ in range(courses)]
            return Clinic(app.state.settings.secret_key, world, opened)
        finally:
            await app.state.engine.dispose()

    return asyncio.run(build())


def today() -> str:
    return date.today().isoformat()
