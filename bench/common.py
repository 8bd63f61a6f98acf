"""What the benchmark scripts share: one-line errors, section headers, a throwaway database, `ipt`."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("IPT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class BenchError(Exception):
    """A failure to report in one line."""


def section(title: str) -> None:
    """Print a section header."""
    print(f"\n== {title}", flush=True)


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new database <prefix>_<random> (its URL), dropped on exit whatever happened."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise BenchError(f"PostgreSQL does not answer at {ADMIN_URL}: {str(exc).strip().splitlines()[0]}") from None
    print(f"created database {name}")
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"dropped database {name}")


def ipt_command() -> str:
    """The `ipt` console script of this interpreter's environment."""
    candidate = Path(sys.executable).parent / "ipt"
    found = str(candidate) if candidate.exists() else shutil.which("ipt")
    if not found:
        raise BenchError("the `ipt` command is not installed; run `make install` (or `make bench`)")
    return found


def run_ipt(env: dict[str, str], *args: str) -> str:
    """Run one `ipt` command; its stdout, or BenchError with its stderr."""
    done = subprocess.run([ipt_command(), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise BenchError(f"`ipt {args[0]}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout
