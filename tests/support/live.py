"""A real server process (``ipt serve``) on loopback, for tests that need real concurrency."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveProcess:
    """A running ``ipt serve``: its base URL, its process, and the file its stderr goes to."""

    base: str
    process: subprocess.Popen
    stderr_path: Path

    def stderr(self) -> str:
        """What the server wrote to stderr so far (the tail), for failure messages."""
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:  # the server has been stopped and its file removed
            return ""


@contextmanager
def live_process(database_url: str, secret_key: str, workers: int = 1, **env: str) -> Iterator[LiveProcess]:
    """Start ``ipt serve`` on the database with the given secret; yield it running; stop it if it still runs."""
    from tests.support.pgbouncer import app_environment  # it imports free_port from here

    port = free_port()
    environment = {
        **os.environ,
        "IPT_ENV": "test",
        **app_environment(database_url),  # through PgBouncer: the pooler setting and the direct URL too
        "IPT_SECRET_KEY": secret_key,
        "IPT_RATE_LIMIT_PER_MINUTE": "0",
        "IPT_LOGIN_FAILURES_PER_ACCOUNT": "100000",
        "IPT_LOGIN_FAILURES_PER_ADDRESS": "100000",
        "IPT_PASSWORD_HASH_MEMORY_KIB": "1024",
        "IPT_PASSWORD_HASH_TIME_COST": "1",
        # The session's live servers share the test database: their webhook workers would race the
        # webhook tests' own workers (and refuse loopback receivers). Tests that want one say so.
        "IPT_WEBHOOK_WORKER": "false",
        "IPT_BULK_EXPORT_WORKER": "false",  # likewise the Bulk Data worker: the in-process tests work their jobs
        **env,
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    # stderr goes to a file, not a pipe: nobody reads a pipe while the server runs, and a full one
    # (tracebacks under load) would block the server mid-request.
    stderr_file = tempfile.NamedTemporaryFile(prefix="ipt-serve-", suffix=".log", delete=False)  # noqa: SIM115
    stderr_path = Path(stderr_file.name)
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=stderr_file)
    stderr_file.close()
    server = LiveProcess(f"http://127.0.0.1:{port}", process, stderr_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {server.stderr()[-2000:]}")
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 30 s")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stderr_path.unlink(missing_ok=True)


@contextmanager
def live_server(database_url: str, secret_key: str, workers: int = 1, **env: str) -> Iterator[str]:
    """Start ``ipt serve`` on the database with the given secret; yield its base URL; stop it."""
    with live_process(database_url, secret_key, workers, **env) as server:
        yield server.base
