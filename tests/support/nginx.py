"""A real nginx (Debian's package) in front of API processes on loopback, configured as the README says.

Plain context manager, no pytest: the caller finds the binary first (tests: infra.require_binary("nginx")).
Everything nginx writes (pid, logs, temporary bodies) stays in a temporary directory removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.live import free_port

# What the README's "Behind a reverse proxy" asks nginx to send; extra_headers add to or replace these.
FORWARDING_HEADERS = {
    "Host": "$http_host",
    "X-Forwarded-For": "$proxy_add_x_forwarded_for",
    "X-Forwarded-Proto": "$scheme",
    "X-Forwarded-Host": "$http_host",
}


def nginx_config(directory: Path, upstreams: list[str], listen: str, bind_address: str | None,
                 headers: dict[str, str], worker_processes: int, access_log: bool = True) -> str:
    """nginx.conf: one server balancing round-robin over the upstreams (kept-alive HTTP/1.1 connections)."""
    servers = "\n".join(f"        server {upstream.removeprefix('http://').rstrip('/')};" for upstream in upstreams)
    header_lines = "\n".join(f'            proxy_set_header {name} "{value}";' for name, value in headers.items())
    temp_paths = "\n".join(f"    {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes {worker_processes};
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log {directory / "access.log" if access_log else "off"};
{temp_paths}
    client_max_body_size 0;  # the app's own limit answers (413 payload_too_large)
    upstream ipt {{
{servers}
        keepalive 64;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://ipt;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_redirect off;  # the Location the app wrote, unrewritten
            {f"proxy_bind {bind_address};" if bind_address else ""}
{header_lines}
        }}
    }}
}}
"""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: nginx's fast shutdown, workers included
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own process group: the workers too
            process.wait()


@contextmanager
def nginx_proxy(upstreams: list[str], listen_port: int | None = None, bind_address: str | None = None,
                extra_headers: dict[str, str] | None = None, listen_address: str = "127.0.0.1",
                worker_processes: int = 1, access_log: bool = True, binary: str = "nginx") -> Iterator[str]:
    """Run nginx proxying to ``upstreams`` (``host:port`` or ``http://host:port``); yield its base URL; stop it.

    ``bind_address`` is the address nginx connects upstream from (``proxy_bind``), so the app can tell it
    from other loopback peers; ``extra_headers`` are more ``proxy_set_header`` lines (nginx values; they
    replace the README's defaults of the same name). ``access_log=False`` for benchmarks.
    """
    port = listen_port or free_port()
    directory = Path(tempfile.mkdtemp(prefix="ipt-nginx-"))
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, upstreams, f"{listen_address}:{port}", bind_address,
                                   FORWARDING_HEADERS | (extra_headers or {}), worker_processes, access_log))
    log = directory / "error.log"
    command = [binary, "-p", str(directory), "-c", str(config), "-e", str(log)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited ({process.returncode}): {log.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection((listen_address, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not listen within 10 s") from None
                time.sleep(0.05)
        yield f"http://{listen_address}:{port}"
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)
