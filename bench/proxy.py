"""nginx on loopback in front of several servers (until tests/support/nginx.py lands: then that one)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from common import BenchError
from servers import free_port, http, stop

CONFIG = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream servers {{ {servers} keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://servers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
"""


@contextlib.contextmanager
def nginx(upstreams: list[int], port: int = 0) -> Iterator[str]:
    """nginx on 127.0.0.1 balancing round-robin over the upstream ports; yields its base URL, stops it on exit."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise BenchError("nginx is not installed: run `make infra` (Debian: apt-get install nginx-light)")
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as directory:
        servers = " ".join(f"server 127.0.0.1:{p};" for p in upstreams)
        conf = Path(directory) / "nginx.conf"
        conf.write_text(CONFIG.format(dir=directory, servers=servers, port=port))
        process = subprocess.Popen([binary, "-p", directory, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while True:
                if process.poll() is not None:
                    raise BenchError(f"nginx exited with {process.returncode}: "
                                     f"{(Path(directory) / 'error.log').read_text(errors='replace')[-800:]}")
                with contextlib.suppress(OSError):
                    if http("GET", base + "/healthz")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError("nginx did not answer /healthz within 10 s")
                time.sleep(0.1)
            yield base
        finally:
            stop(process)
