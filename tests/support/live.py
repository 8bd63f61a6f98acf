"""A real server process (``ipt serve``) on loopback, for tests that need real concurrency."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(database_url: str, secret_key: str, workers: int = 1, **env: str) -> Iterator[str]:
    """Start ``ipt serve`` on the database with the given secret; yield its base URL; stop it."""
    port = free_port()
    environment = {
        **os.environ,
        "IPT_ENV": "test",
        "IPT_DATABASE_URL": database_url,
        "IPT_SECRET_KEY": secret_key,
        "IPT_RATE_LIMIT_PER_MINUTE": "0",
        "IPT_LOGIN_RATE_LIMIT_PER_MINUTE": "100000",
        "IPT_PASSWORD_HASH_MEMORY_KIB": "1024",
        "IPT_PASSWORD_HASH_TIME_COST": "1",
        # The session's live servers share the test database: their webhook workers would race the
        # webhook tests' own workers (and refuse loopback receivers). Tests that want one say so.
        "IPT_WEBHOOK_WORKER": "false",
        **env,
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
