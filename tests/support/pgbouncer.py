"""A real PgBouncer in transaction pooling mode on loopback, in front of the test PostgreSQL server.

A plain context manager (no pytest), so the bench can use it too::

    with pgbouncer(database_url) as url:   # url: the same database, reached through PgBouncer
        ...
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.support.live import free_port

RUN_AS = "postgres"  # PgBouncer refuses to run as root
_servers_behind: dict[str, str] = {}  # the URL through each running PgBouncer -> the database's own URL


def find_pgbouncer() -> str | None:
    """PgBouncer's binary (Debian installs it in /usr/sbin), or None."""
    return shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.path.exists(p)), None)


def app_settings(url: str) -> dict[str, str]:
    """The app's settings for a database URL: the pooler and the direct URL when it goes through a PgBouncer started here."""
    direct = _servers_behind.get(url)
    return {} if direct is None else {"database_pooler": "pgbouncer", "database_direct_url": direct}


def app_environment(url: str) -> dict[str, str]:
    """``IPT_DATABASE_URL`` and, through a PgBouncer started here, what else the app needs to know (as environment)."""
    return {"IPT_DATABASE_URL": url, **{f"IPT_{name.upper()}": value for name, value in app_settings(url).items()}}


def admin_url(url: str) -> str:
    """PgBouncer's admin console (SHOW POOLS, SHOW STATS) behind a URL that ``pgbouncer()`` yielded."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.split("+")[0], parts.netloc, "/pgbouncer", "", ""))


@contextmanager
def pgbouncer(database_url: str, *, pool_size: int = 20, max_client_conn: int = 500,
              binary: str | None = None, **settings: str | int) -> Iterator[str]:
    """Start PgBouncer (pool_mode = transaction) in front of ``database_url``'s server; yield the URL through it; stop it.

    ``settings``: more lines of its [pgbouncer] section (``query_wait_timeout=5``), over the defaults here.
    """
    binary = binary or find_pgbouncer()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (make infra installs it as root)")
    parts = urlsplit(database_url)
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="ipt-pgbouncer-"))
    config = directory / "pgbouncer.ini"
    log = directory / "pgbouncer.log"
    user = parts.username or RUN_AS
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    section = {
        "listen_addr": "127.0.0.1", "listen_port": port, "unix_socket_dir": "",
        "auth_type": "trust", "auth_file": directory / "userlist.txt", "admin_users": user,
        "pool_mode": "transaction", "max_client_conn": max_client_conn, "default_pool_size": pool_size,
        # The README's production values: retry a server that was down after 1 s (not 15), and let a
        # request wait for a server connection no longer than the app waits for one of its own (5 s, not 120).
        "server_login_retry": 1, "query_wait_timeout": 5,
        "logfile": log, "pidfile": directory / "pgbouncer.pid",
        **settings,
    }
    config.write_text(f"[databases]\n* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}\n\n[pgbouncer]\n"
                      + "".join(f"{name} = {value}\n" for name, value in section.items()))
    command = [binary, str(config)]
    if os.geteuid() == 0:
        shutil.chown(directory, RUN_AS)
        for path in directory.iterdir():
            shutil.chown(path, RUN_AS)
        command[1:1] = ["-u", RUN_AS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=directory)
    url = urlunsplit((parts.scheme, f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}".lstrip("@"),
                      parts.path, parts.query, parts.fragment))
    try:
        _wait_until_it_answers(url, process, log)
        _servers_behind[url] = database_url
        yield url
    finally:
        _servers_behind.pop(url, None)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown: clients and servers are dropped
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_it_answers(url: str, process: subprocess.Popen, log: Path, seconds: float = 15) -> None:
    """Return once a query goes through PgBouncer to the server; raise with its log if it exits or never answers."""
    libpq = urlunsplit(("postgresql", *urlsplit(url)[1:]))
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}): {_tail(log)}")
        try:
            with psycopg.connect(libpq, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not answer within {seconds:.0f} s: {_tail(log)}") from None
            time.sleep(0.05)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"
