"""Research export benchmark: GET /v1/research/measures against PostgreSQL's own COPY of the same rows.

One run: create a throwaway PostgreSQL database ipt_bench_export_<random> (dropped at the end, even
on failure or Ctrl-C); migrate it with `ipt db upgrade`; bootstrap an organization; seed it with
1,000,000 measure rows by COPY (bench/export_seed.py), plus a smaller second organization; serve
the API as production does (`ipt serve`, IPT_ENV=production, a random IPT_SECRET_KEY,
IPT_RATE_LIMIT_PER_MINUTE=0); get a research:export token from an integration; then measure

  1. the export: GET /v1/research/measures (NDJSON, streamed), read by a client that counts lines
     and discards the bytes, while the server's VmRSS is sampled from /proc every 20 ms;
  2. the floor: COPY (<the export's own SELECT>) TO STDOUT through psycopg, bytes discarded;

and print both rates, their ratio (target: the export at least 1/3 of COPY) and the server's peak
RSS growth (target: under 100 MB), and write them to bench/RESULTS.md under their own heading.

    .venv/bin/python bench/export_bench.py [--measures 1000000] [--no-results]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"
HEADING = "## Research export (bench/export_bench.py)"
ADMIN_URL = os.environ.get("IPT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RATIO_TARGET, MEMORY_TARGET_MB = 1 / 3, 100.0

sys.path[:0] = [str(ROOT), str(BENCH)]

import httpx
import psycopg
from common import BenchError, run_ipt, section, throwaway_database
from export_seed import Pools, check_columns, seed_organization
from sqlalchemy.dialects import postgresql

from app.research.repository import ExportFilters, measure_query


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[tuple[str, subprocess.Popen]]:
    """`ipt serve` in its own process group; yields its base URL and process once /healthz answers."""
    OUT.mkdir(exist_ok=True)
    command = [str(Path(sys.executable).parent / "ipt"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    with open(OUT / "export-api.log", "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise BenchError(f"the API exited with {process.returncode} (see {OUT / 'export-api.log'})")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError("the API did not answer /healthz within 60 s")
                time.sleep(0.2)
            yield base, process
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)


def rss_mb(pid: int) -> float:
    """The process's resident set size now (VmRSS), in MB."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every 20 ms until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples = pid, 0.0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self.pid))
                self.samples += 1
            self._stop_event.wait(0.02)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def timed_export(base: str, token: str, pid: int, query: str = "") -> dict:
    """Stream one NDJSON export, counting lines and discarding the bytes; rate, bytes, RSS and CPU."""
    headers = {"Authorization": f"Bearer {token}"}
    before_rss, before_cpu = rss_mb(pid), cpu_seconds(pid)
    sampler = RssSampler(pid)
    sampler.start()
    rows = size = 0
    started = time.perf_counter()
    with httpx.stream("GET", f"{base}/v1/research/measures{query}", headers=headers, timeout=600) as response:
        if response.status_code != 200:
            sampler.stop()
            raise BenchError(f"the export answered {response.status_code}: {response.read()[:300]!r}")
        profile = response.headers.get("x-export-profile")
        for chunk in response.iter_raw(1 << 20):
            rows += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    return {"rows": rows, "bytes": size, "seconds": elapsed, "rate": rows / elapsed, "rss_before_mb": before_rss,
            "rss_peak_mb": peak, "rss_growth_mb": max(0.0, peak - before_rss), "profile": profile,
            "server_cpu_s": cpu_seconds(pid) - before_cpu}


def copy_sql(org_id: str) -> str:
    """The export's own SELECT, with the organization bound, as PostgreSQL text."""
    query = measure_query(org_id, ExportFilters())
    return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def timed_copy(database_url: str, sql: str) -> dict:
    """COPY (the same SELECT) TO STDOUT through psycopg: rows/s, bytes discarded."""
    rows = size = 0
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        with cur.copy(f"COPY ({sql}) TO STDOUT") as copy:
            for data in copy:
                rows += bytes(data).count(b"\n")
                size += len(data)
        elapsed = time.perf_counter() - started
    return {"rows": rows, "bytes": size, "seconds": elapsed, "rate": rows / elapsed}


def versions(database_url: str) -> str:
    from importlib.metadata import version

    with psycopg.connect(database_url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    names = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "psycopg", "orjson")
    return ", ".join(f"{n} {version(n)}" for n in names) + f", postgresql {server}"


@contextlib.contextmanager
def seeded_database(prefix: str, measures: int) -> Iterator[tuple[str, dict[str, str], str, dict]]:
    """A throwaway database, migrated, with two organizations seeded by COPY (``measures`` and a tenth as many);
    yields its URL, the environment to serve it with, the first organization's id and the seeded counts."""
    check_columns()
    secret = secrets.token_urlsafe(48)
    with throwaway_database(prefix) as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
        env.update(IPT_DATABASE_URL=database_url, IPT_ENV="production", IPT_SECRET_KEY=secret,
                   IPT_RATE_LIMIT_PER_MINUTE="0", IPT_LOG_LEVEL="WARNING")
        section("Migrating and bootstrapping")
        run_ipt(env, "db", "upgrade")
        org_id, other_id = (json.loads(run_ipt(env, "bootstrap", "--org", f"Bench {name} Organization", "--admin-email",
                                               f"admin@{name.lower()}.{prefix}.bench.ipt.example", "--admin-password",
                                               secrets.token_urlsafe(18)))["organization_id"] for name in ("Main", "Other"))
        section(f"Seeding {measures:,} measure rows (and {measures // 10:,} in another organization) by COPY")
        started = time.perf_counter()
        rng = random.Random(20261126)
        pools = Pools.build(rng)
        with psycopg.connect(database_url) as conn:
            counts = seed_organization(conn, rng, pools, org_id, measures)
            seed_organization(conn, rng, pools, other_id, measures // 10)
            conn.commit()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        print(f"seeded in {time.perf_counter() - started:.0f} s: {counts}")
        yield database_url, env, org_id, counts


def run(args: argparse.Namespace) -> dict:
    with seeded_database("ipt_bench_export", args.measures) as (database_url, env, org_id, counts):
        credentials = json.loads(run_ipt(env, "integration", "create", "--org", org_id, "--name", "Bench researcher",
                                     "--scopes", "research:export"))
        sql = copy_sql(org_id)
        section("Serving the API (ipt serve, IPT_ENV=production, 1 worker)")
        with serving(env, args.port or free_port()) as (base, process):
            token = httpx.post(f"{base}/v1/auth/token", data={
                "grant_type": "client_credentials", "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"]}).json()["access_token"]
            timed_export(base, token, process.pid, "?started_year_from=2999")  # warm-up: imports, caches; no rows
            section("Warm-up COPY (discarded: it fills PostgreSQL's cache for both)")
            warm = timed_copy(database_url, sql)
            print(f"{warm['rows']:,} rows in {warm['seconds']:.2f} s")
            section("GET /v1/research/measures (NDJSON, streamed)")
            load = os.getloadavg()[0]
            exported = timed_export(base, token, process.pid)
            print(f"{exported['rows']:,} rows, {exported['bytes'] / 1e6:,.0f} MB in {exported['seconds']:.2f} s: "
                  f"{exported['rate']:,.0f} rows/s; server RSS {exported['rss_before_mb']:.0f} -> peak "
                  f"{exported['rss_peak_mb']:.0f} MB; server CPU {exported['server_cpu_s']:.1f} s")
        section("COPY (the same SELECT) TO STDOUT")
        copied = timed_copy(database_url, sql)
        print(f"{copied['rows']:,} rows, {copied['bytes'] / 1e6:,.0f} MB in {copied['seconds']:.2f} s: "
              f"{copied['rate']:,.0f} rows/s")
        if exported["rows"] != copied["rows"] or exported["rows"] != args.measures:
            raise BenchError(f"row counts differ: export {exported['rows']:,}, COPY {copied['rows']:,}, "
                             f"seeded {args.measures:,}")
        return {"export": exported, "copy": copied, "counts": counts, "versions": versions(database_url),
                "load": load, "ratio": exported["rate"] / copied["rate"]}


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" with uncommitted changes" if git("status", "--porcelain") else "")


def report(result: dict, measures: int) -> str:
    """The section of RESULTS.md for this run."""
    e, c = result["export"], result["copy"]
    ratio_ok = "meets" if result["ratio"] >= RATIO_TARGET else "MISSES"
    memory_ok = "meets" if e["rss_growth_mb"] < MEMORY_TARGET_MB else "MISSES"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{HEADING}

Written by `bench/export_bench.py`; each run replaces this section only. See bench/README.md.

- Date: {now}; code: {commit()}
- Machine: nproc={os.cpu_count()}, {platform.processor() or platform.machine()}; {platform.platform()}; Python {platform.python_version()}; 1-minute load average before the export: {result['load']:.2f}
- Versions: {result['versions']}
- Data: {measures:,} measures in {result['counts']['course']:,} courses ({result['counts']['therapy_session']:,} sessions, {result['counts']['formulation']:,} formulations), plus a second organization with a tenth as many; seeded by COPY.
- Export: `GET /v1/research/measures` (NDJSON, safe_harbor) from `ipt serve --workers 1` (IPT_ENV=production), read by an httpx client that counts lines and discards the bytes; the client, the server and PostgreSQL share the machine's cores.
- Floor: `COPY (<the export's own SELECT>) TO STDOUT` through psycopg, bytes discarded.

| | rows | MB | seconds | rows/s |
|---|---:|---:|---:|---:|
| export (API, streamed NDJSON) | {e['rows']:,} | {e['bytes'] / 1e6:,.0f} | {e['seconds']:.2f} | {e['rate']:,.0f} |
| COPY (same SELECT) | {c['rows']:,} | {c['bytes'] / 1e6:,.0f} | {c['seconds']:.2f} | {c['rate']:,.0f} |

**Export / COPY rate: {result['ratio']:.2f}** (target >= 0.33: {ratio_ok}).
**Server peak RSS growth during the export: {e['rss_growth_mb']:.1f} MB** ({e['rss_before_mb']:.0f} MB before, {e['rss_peak_mb']:.0f} MB at the peak; target < {MEMORY_TARGET_MB:.0f} MB: {memory_ok}).
Server CPU during the export: {e['server_cpu_s']:.1f} s ({e['server_cpu_s'] * 1e6 / max(e['rows'], 1):.1f} us per row).
"""


def write_results(text: str, heading: str = HEADING) -> None:
    """Replace the benchmark's section (``heading``) of RESULTS.md, or append it, leaving every other part as it is."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    after = ""
    if heading in current:
        before, _, rest = current.partition(heading)
        after = rest[rest.find("\n## "):] if "\n## " in rest else ""
        current = before.rstrip("\n") + "\n"
    RESULTS.write_text(current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n" + after)


def bench_main(description: str, run, report, heading: str, more_arguments=None) -> int:
    """The command line of a seeded export benchmark: parse, run, print the report, write its section."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--measures", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-results", action="store_true", help="print, but do not write bench/RESULTS.md")
    if more_arguments:
        more_arguments(parser)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: drop the database
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    text = report(result, args)
    section("Result")
    print(text)
    if not args.no_results:
        write_results(text, heading)
        print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


def main() -> int:
    return bench_main(__doc__.split("\n\n")[0], run, lambda result, args: report(result, args.measures), HEADING)


if __name__ == "__main__":
    sys.exit(main())
