"""The results: the table, the targets of issue 8, and bench/RESULTS.md."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from common import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"
KEPT_SECTION = "\n## Research export"  # bench/export_bench.py's section, kept as it is
READS = ("get_course", "list_small", "list_big", "outcomes")


def _ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else "n/a"


def _cpu(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def ratio(result: dict) -> float:
    return result["api"]["rps"] / result["floor"]["rps"] if result["floor"]["rps"] else float("nan")


def table(results: dict[str, dict]) -> str:
    """One row per endpoint: API and floor rates and latencies, their ratio, CPU per request."""
    header = ("| endpoint | API req/s | API p50 | API p99 | floor req/s | floor p50 | floor p99 | API / floor "
              "| server CPU ms/req (API, floor) | PostgreSQL CPU ms/req (API, floor) |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results.values():
        api, floor = r["api"], r["floor"]
        lines.append(
            f"| {r['endpoint'].label} | {api['rps']:,.0f} | {_ms(api['p50'])} | {_ms(api['p99'])} "
            f"| {floor['rps']:,.0f} | {_ms(floor['p50'])} | {_ms(floor['p99'])} | **{ratio(r):.2f}** "
            f"| {_cpu(api.get('server_cpu_ms'))}, {_cpu(floor.get('server_cpu_ms'))} "
            f"| {_cpu(api.get('postgres_cpu_ms'))}, {_cpu(floor.get('postgres_cpu_ms'))} |"
        )
    return "\n".join(lines)


def details(results: dict[str, dict]) -> str:
    """Requests, errors, load average before each run, and what the probes found."""
    header = ("| endpoint | request | requests (API, floor) | errors (API, floor) | load average before (API, floor) "
              "| same data in the probe |")
    lines = [header, "|---|---|---:|---:|---:|---|"]
    for r in results.values():
        api, floor = r["api"], r["floor"]
        lines.append(f"| {r['endpoint'].label} | `{r['endpoint'].request}` "
                     f"| {api['requests']:,}, {floor['requests']:,} | {api['errors']}, {floor['errors']} "
                     f"| {api['load']:.2f}, {floor['load']:.2f} | {r['same']} |")
    return "\n".join(lines)


def list_line(results: dict[str, dict]) -> str | None:
    """The list page at the big organization against the small one: how much longer a page takes."""
    small, big = results.get("list_small"), results.get("list_big")
    if not small or not big:
        return None
    slower = small["api"]["rps"] / big["api"]["rps"]
    floor = small["floor"]["rps"] / big["floor"]["rps"]
    return (f"List page at {big['endpoint'].courses:,} courses against one at {small['endpoint'].courses:,}: "
            f"**{slower:.2f}x** the time per page "
            f"(from requests/s: {big['api']['rps']:,.0f} vs {small['api']['rps']:,.0f}; p50 {_ms(big['api']['p50'])} "
            f"vs {_ms(small['api']['p50'])}). The floor's pages: {floor:.2f}x.")


def targets(results: dict[str, dict], connections: int) -> list[tuple[str, bool | None, str]]:
    """Issue 8's targets as (target, met (None: not measured), the numbers)."""
    found: list[tuple[str, bool | None, str]] = []
    for name, share, label in (("get_course", 0.5, "get a course"), ("record_measure", 0.35, "record a measure")):
        r = results.get(name)
        text = f"{label}: API at least {share} of the floor's rate"
        found.append((text, None, "not measured") if not r else (text, ratio(r) >= share, f"{ratio(r):.2f}"))
    small, big = results.get("list_small"), results.get("list_big")
    text = "list page at 1,000,000 courses no slower than 1.5x a page at 10,000"
    if small and big:
        sizes = (big["endpoint"].courses, small["endpoint"].courses)
        if sizes != (1_000_000, 10_000):
            text += f" (measured at {sizes[0]:,} and {sizes[1]:,})"
        slower = small["api"]["rps"] / big["api"]["rps"]
        found.append((text, slower <= 1.5, f"{slower:.2f}x"))
    else:
        found.append((text, None, "not measured"))
    reads = [r for name, r in results.items() if name in READS]
    text = f"p99 under 50 ms at {connections} connections for the reads"
    if connections != 32:
        text += " (the target is at 32)"
    if reads:
        numbers = ", ".join(f"{r['endpoint'].label} {_ms(r['api']['p99'])}" for r in reads)
        # An absolute latency depends on the machine's speed that day: the floor's p99 on the same
        # reads tells whether any Python server could have met it there.
        floors = [r["floor"]["p99"] for r in reads if "floor" in r]
        if floors:
            numbers += "; the floor's: " + ", ".join(_ms(p99) for p99 in floors)
            if any(p99 >= 50 for p99 in floors):
                numbers += ": the floor itself misses the target on this machine today"
        found.append((text, all(r["api"]["p99"] < 50 for r in reads), numbers))
    else:
        found.append((text, None, "not measured"))
    return found


def targets_text(found: list[tuple[str, bool | None, str]]) -> str:
    mark = {True: "met", False: "**NOT met**"}
    return "\n".join(f"- {text}: {mark[met]} ({numbers})" if met is not None else f"- {text}: not measured"
                     for text, met, numbers in found)


# --- RESULTS.md --------------------------------------------------------------------------------
def quote(command: list[str]) -> str:
    """A command line with repository paths made relative and the token hidden."""
    shown = [str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c for c in command]
    if "--" in shown:  # the Lua script's arguments: data file, [threads,] token
        cut = shown.index("--")
        shown = shown[:cut + 1] + [a if len(a) < 100 else "<token>" for a in shown[cut + 1:]]
    return shlex.join(shown)


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": str(os.cpu_count()), "cpu": model, "os": platform.platform(), "python": platform.python_version()}


def revision() -> str:
    """The commit benchmarked, and whether tracked files differed from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def versions(wrk: str, database_url: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "psycopg", "psycopg-pool", "orjson",
             "uvloop", "httptools")
    found = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):  # asyncpg, say, only once the app uses it
            found[name] = version(name)
    with psycopg.connect(database_url) as conn:
        found["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    banner = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout.split()
    found["wrk"] = banner[1] if len(banner) > 1 else "?"
    return found


def document(results: dict[str, dict], args, info: dict) -> str:
    """The whole of RESULTS.md up to the sections other benchmarks keep."""
    m, c = info["machine"], info["counts"]
    env_line = "IPT_ENV=production IPT_SECRET_KEY=<random 48 bytes> IPT_RATE_LIMIT_PER_MINUTE=0 IPT_LOG_LEVEL=WARNING"
    steps = "; ".join(f"{k} {v:.0f} s" for k, v in info["timings"].items())
    commands = [
        "# IPT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ipt_bench_<random>, created and dropped by the run",
        f"IPT_DATABASE_URL=... {env_line} ipt db upgrade",
        (f"IPT_DATABASE_URL=... {env_line} ipt bootstrap --org 'Bench Organization' "
         "--admin-email admin@bench.ipt.example --admin-password <random>"),
        "# then bench/seed.py fills it by COPY (the sizes above); every account's password is one random password",
        f"IPT_DATABASE_URL=... {env_line} {quote(info['worker_command'])} &",
        f"IPT_DATABASE_URL=... {env_line} IPT_BACKGROUND_TASKS=false {quote(info['api_command'])}",
    ]
    commands += [quote(r["api"]["command"]) for r in results.values()]
    floor_env = f"FLOOR_DATABASE_URL=... FLOOR_ACTOR_ID=<the clinician's id> FLOOR_POOL_SIZE={info['pool_size']}"
    commands += ["", f"{floor_env} {quote(info['floor_command'])}"]
    commands += [quote(r["floor"]["command"]) for r in results.values()]
    found = targets(results, args.connections)
    extra = list_line(results)
    return f"""# Benchmark results

Written by `bench/run.py` (`make bench`); each run replaces this file up to the research export section.
See bench/README.md for what a run does and what the floor leaves out.

- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Code: {info['revision']}
- Machine: nproc={m['nproc']}, {m['cpu']}; {m['os']}; Python {m['python']}
- Versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}
- Data: {c['organizations']} organizations, {c['users']} users, {c['patient']:,} patients, {c['course']:,} courses,
  {c['therapy_session']:,} sessions, {c['measure']:,} measures, {c['formulation']:,} formulations
  (scale {args.scale}); seeded by COPY in {info['seed_seconds']:.0f} s ({steps}).
- Load: per endpoint, `wrk -t{args.threads} -c{args.connections} -d{args.duration}` after a {args.warmup} warm-up
  (before it, a CHECKPOINT, a sync and a second of prompt fsyncs: nothing of earlier runs is written back during a run),
  with a real token (password grant) on the API; endpoint by endpoint, reads before writes, the API (started
  afresh) then the floor (bench/floor_app.py), never both at once. The API runs as production does (README): `ipt serve --workers 1`
  (IPT_ENV=production) answering requests, and `ipt worker` beside it sealing the audit log and delivering webhooks;
  the worker used {info.get('worker_cpu_seconds', 0):.1f} s of CPU during the API's runs (with the end of each start's imports). wrk, the servers and
  PostgreSQL share the machine's {m['nproc']} cores.

{table(results)}

{extra or "(The list at the big organization was not measured.)"}

Targets (issue 8):

{targets_text(found)}

Details:

{details(results)}

## Commands

```sh
{chr(10).join(commands)}
```
"""


def write_results(text: str) -> None:
    """Replace RESULTS.md up to the research export section, which bench/export_bench.py keeps."""
    kept = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        start = old.find(KEPT_SECTION)
        kept = old[start:] if start >= 0 else ""
    RESULTS.write_text(text + kept)
