"""Starting and stopping the servers under test, and plain HTTP calls to them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from common import ROOT, BenchError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(port: int) -> None:
    with socket.socket() as s:
        # As uvicorn binds: a port whose last server's connections linger in TIME_WAIT is free to it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise BenchError(f"port {port} on 127.0.0.1 is already in use") from None


def http(method: str, url: str, *, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request; the status and body, whatever the status."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_token(base: str, email: str, password: str) -> str:
    """A real access token from the password grant."""
    form = urllib.parse.urlencode({"grant_type": "password", "username": email, "password": password}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = http("POST", base + "/v1/auth/token", data=form, headers=headers)
    if status != 200:
        raise BenchError(f"POST /v1/auth/token for {email} answered {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


@contextlib.contextmanager
def serving(name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path,
            timeout: float = 60) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start a server in its own process group, wait for /healthz, yield its base URL and process, stop it."""
    check_port_free(port)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:  # started once per endpoint: keep every start's log
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
                    raise BenchError(f"{name} exited with {process.returncode} before answering:\n  "
                                     + "\n  ".join(tail))
                with contextlib.suppress(OSError):
                    if http("GET", base + "/healthz")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} did not answer /healthz within {timeout:.0f}s (see {log_path})")
                time.sleep(0.2)
            yield base, process
        finally:
            stop(process)


@contextlib.contextmanager
def running(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen]:
    """A background process (no HTTP) in its own process group, stopped on exit; fails if it dies early."""
    with open(log_dir / f"{name}.log", "ab") as log:  # started once per endpoint: keep every start's log
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(1.0)
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode} at start (see {log_dir / name}.log)")
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it is ours: start_new_session), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
