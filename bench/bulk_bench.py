"""Bulk Data benchmark: a FHIR $export of every measure against the research export of the same rows.

One run, on the research export bench's data (bench/export_seed.py: 1,000,000 measures by default,
a throwaway PostgreSQL database dropped at the end): serve the API as production does (`ipt serve`,
one process, its Bulk Data worker inside it), then, one after the other,

  1. the research export: GET /v1/research/measures, streamed, lines counted (bench/export_bench.py);
  2. the Bulk Data export of the same measures: kick off `$export?_type=QuestionnaireResponse,Observation`
     (Prefer: respond-async, allowPartialManifests=true), poll the status URL and follow its manifests,
     downloading every file as soon as one lists it (Accept: application/fhir+ndjson), counting lines;
     timed from the kick-off to the last byte;

and print both rates in measures a second, their ratio (target: the Bulk Data export at least half
the research export's) and the server's peak RSS growth during the Bulk Data export (target: under
100 MB), written to bench/RESULTS.md under their own heading.

    .venv/bin/python bench/bulk_bench.py [--measures 1000000] [--no-results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx
from common import BenchError, run_ipt, section
from export_bench import (
    RssSampler,
    bench_main,
    commit,
    cpu_seconds,
    free_port,
    rss_mb,
    seeded_database,
    serving,
    timed_export,
    versions,
)
from isal import isal_zlib

HEADING = "## Bulk Data export (bench/bulk_bench.py)"
RATIO_TARGET, MEMORY_TARGET_MB = 0.5, 100.0
TYPES = "QuestionnaireResponse,Observation"
DOWNLOADS = 4


def _count(client: httpx.Client, output: dict) -> tuple[str, int, int, int]:
    """Download one file: its type, lines, bytes on the wire and bytes inflated."""
    count = wire = plain = 0
    with client.stream("GET", output["url"]) as response:
        inflater = isal_zlib.decompressobj(47) if response.headers.get("content-encoding") == "gzip" else None
        for chunk in response.iter_raw(1 << 20):
            wire += len(chunk)
            data = inflater.decompress(chunk) if inflater else chunk
            plain += len(data)
            count += data.count(b"\n")
    return output["type"], count, wire, plain


def timed_bulk(base: str, token: str, pid: int, types: str = TYPES) -> dict:
    """Kick off, download every file: measures a second from the kick-off to the last byte, RSS and CPU.

    The client asks for partial manifests (Bulk Data 3.0's allowPartialManifests) and downloads each
    file as soon as a manifest lists it, DOWNLOADS at a time (as Bulk Data clients do: the SMART
    reference client's default is 5), gzip-encoded, inflating each with ISA-L to count its lines.
    """
    headers = {"Authorization": f"Bearer {token}"}
    before_rss, before_cpu = rss_mb(pid), cpu_seconds(pid)
    sampler = RssSampler(pid)
    sampler.start()
    started = time.perf_counter()
    kicked = httpx.get(f"{base}/fhir/r4/$export", params={"_type": types, "allowPartialManifests": "true"},
                       headers={**headers, "Prefer": "respond-async", "Accept": "application/fhir+json"})
    if kicked.status_code != 202:
        sampler.stop()
        raise BenchError(f"the kick-off answered {kicked.status_code}: {kicked.text[:300]}")
    accept = {**headers, "Accept": "application/fhir+ndjson", "Accept-Encoding": "gzip"}
    url, polls, listed, downloads = kicked.headers["content-location"], 0, set(), []
    with httpx.Client(headers=accept, timeout=600, limits=httpx.Limits(max_connections=DOWNLOADS + 1)) as client, \
            ThreadPoolExecutor(DOWNLOADS) as pool:
        while True:
            status = client.get(url, headers=headers, timeout=60)
            if status.status_code not in (200, 202):
                sampler.stop()
                raise BenchError(f"the status answered {status.status_code}: {status.text[:300]}")
            manifest = status.json() if status.headers["content-type"].startswith("application/json") else {}
            for output in manifest.get("output", []):
                if output["url"] not in listed:
                    listed.add(output["url"])
                    downloads.append(pool.submit(_count, client, output))
            if manifest.get("link"):
                url = manifest["link"][0]["url"]
            elif status.status_code == 200:
                break
            else:
                polls += 1
                time.sleep(0.2)
        produced = time.perf_counter() - started
        counted = [download.result() for download in downloads]
    lines, size, inflated = {}, 0, 0
    for resource_type, count, wire, plain in counted:
        lines[resource_type] = lines.get(resource_type, 0) + count
        size, inflated = size + wire, inflated + plain
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    measures = max(lines.values(), default=0)
    return {"measures": measures, "lines": lines, "files": len(listed), "bytes": size, "inflated": inflated,
            "seconds": elapsed, "produced_seconds": produced, "rate": measures / elapsed, "polls": polls,
            "rss_before_mb": before_rss, "rss_peak_mb": peak, "rss_growth_mb": max(0.0, peak - before_rss),
            "server_cpu_s": cpu_seconds(pid) - before_cpu}


def run(args: argparse.Namespace) -> dict:
    with seeded_database("ipt_bench_bulk", args.measures) as (database_url, env, org_id, counts):
        credentials = json.loads(run_ipt(env, "integration", "create", "--org", org_id, "--name", "Bench EHR",
                                         "--scopes", "research:export clinical:read"))
        section("Serving the API (ipt serve, IPT_ENV=production, 1 process with its Bulk Data worker)")
        with serving(env, args.port or free_port()) as (base, process):
            token = httpx.post(f"{base}/v1/auth/token", data={
                "grant_type": "client_credentials", "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"]}).json()["access_token"]
            timed_export(base, token, process.pid, "?started_year_from=2999")  # warm-up: imports, caches; no rows
            section("GET /v1/research/measures (NDJSON, streamed; also warms PostgreSQL's cache)")
            timed_export(base, token, process.pid)
            load = os.getloadavg()[0]
            research = timed_export(base, token, process.pid)
            print(f"{research['rows']:,} rows in {research['seconds']:.2f} s: {research['rate']:,.0f} rows/s")
            section(f"Bulk Data $export?_type={args.types}: kick-off, poll, download every file")
            bulk = timed_bulk(base, token, process.pid, args.types)
            print(f"{bulk['measures']:,} measures ({bulk['lines']}) in {bulk['files']} files, {bulk['bytes'] / 1e6:,.0f} MB, "
                  f"in {bulk['seconds']:.2f} s (last manifest after {bulk['produced_seconds']:.2f} s): {bulk['rate']:,.0f} "
                  f"measures/s; server RSS {bulk['rss_before_mb']:.0f} -> peak {bulk['rss_peak_mb']:.0f} MB; "
                  f"server CPU {bulk['server_cpu_s']:.1f} s")
        if any(bulk["lines"].get(t) != research["rows"] for t in args.types.split(",")):
            raise BenchError(f"counts differ: research {research['rows']:,}, bulk {bulk['lines']}")
        return {"research": research, "bulk": bulk, "counts": counts, "versions": versions(database_url),
                "load": load, "ratio": bulk["rate"] / research["rate"]}


def report(result: dict, measures: int, types: str = TYPES) -> str:
    """The section of RESULTS.md for this run."""
    r, b = result["research"], result["bulk"]
    ratio_ok = "meets" if result["ratio"] >= RATIO_TARGET else "MISSES"
    memory_ok = "meets" if b["rss_growth_mb"] < MEMORY_TARGET_MB else "MISSES"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{HEADING}

Written by `bench/bulk_bench.py`; each run replaces this section only. See bench/README.md.

- Date: {now}; code: {commit()}
- Machine: nproc={os.cpu_count()}, {os.uname().machine}; 1-minute load average before the exports: {result['load']:.2f}
- Versions: {result['versions']}
- Data: {measures:,} measures in {result['counts']['course']:,} courses, plus a second organization with a tenth as many; seeded by COPY (bench/export_seed.py).
- Research export: `GET /v1/research/measures` (NDJSON), streamed, lines counted (the second of two runs).
- Bulk Data: `$export?_type={types}&allowPartialManifests=true` from kick-off to the last byte of the last file: the worker inside the one `ipt serve` process writes the files into PostgreSQL while the client polls every 0.2 s and follows the manifests, downloading each file as soon as one lists it, {DOWNLOADS} at a time, gzip-encoded as stored, inflating each with ISA-L to count its lines.

| | measures | files | MB | seconds | measures/s |
|---|---:|---:|---:|---:|---:|
| research export (streamed NDJSON, one row a measure) | {r['rows']:,} | 1 | {r['bytes'] / 1e6:,.0f} | {r['seconds']:.2f} | {r['rate']:,.0f} |
| Bulk Data ({types.replace(",", " and ")} a measure; gzip on the wire, {b['inflated'] / 1e6:,.0f} MB inflated) | {b['measures']:,} | {b['files']} | {b['bytes'] / 1e6:,.0f} | {b['seconds']:.2f} | {b['rate']:,.0f} |

The last manifest came after {b['produced_seconds']:.2f} s; the downloads still running then took the rest.
**Bulk Data / research export rate: {result['ratio']:.2f}** (target >= {RATIO_TARGET}: {ratio_ok}).
**Server peak RSS growth during the Bulk Data export: {b['rss_growth_mb']:.1f} MB** ({b['rss_before_mb']:.0f} MB before, {b['rss_peak_mb']:.0f} MB at the peak; target < {MEMORY_TARGET_MB:.0f} MB: {memory_ok}).
Server CPU during it: {b['server_cpu_s']:.1f} s ({b['server_cpu_s'] * 1e6 / max(b['measures'], 1):.1f} us per measure).
"""


def main() -> int:
    def types(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--types", default=TYPES, help=f"the export's _type (default {TYPES})")

    return bench_main(__doc__.split("\n\n")[0], run, lambda result, args: report(result, args.measures, args.types),
                      HEADING, types)


if __name__ == "__main__":
    sys.exit(main())
