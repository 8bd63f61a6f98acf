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
AUDIT_SECTION = "\n## With "  # make bench-audit's section (--audit-events), kept by the other runs
KEPT_SECTIONS = (AUDIT_SECTION, "\n## Research export")  # the second: bench/export_bench.py's
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
    for name, share, label in (("get_course", 0.5, "get a course"), ("record_measure", 0.35, "record a measure"),
                               ("record_group_session", 0.35, "record a group session (8 members)")):
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


def _pgbouncer(results: dict[str, dict[str, dict]]) -> str:
    header = ("| endpoint | API req/s (direct, PgBouncer) | **PgBouncer / direct** | API p50 (direct, PgBouncer) "
              "| API p99 (direct, PgBouncer) | server CPU ms/req (direct, PgBouncer) "
              "| PostgreSQL CPU ms/req (direct, PgBouncer) | API / floor (direct, both through PgBouncer) "
              "| extra: floor through PgBouncer / direct |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, through in results["pgbouncer"].items():
        plain = results["direct"][name]
        a, b = plain["api"], through["api"]
        lines.append(
            f"| {through['endpoint'].label} | {a['rps']:,.0f}, {b['rps']:,.0f} | **{b['rps'] / a['rps']:.2f}** "
            f"| {_ms(a['p50'])}, {_ms(b['p50'])} | {_ms(a['p99'])}, {_ms(b['p99'])} "
            f"| {_cpu(a.get('server_cpu_ms'))}, {_cpu(b.get('server_cpu_ms'))} "
            f"| {_cpu(a.get('postgres_cpu_ms'))}, {_cpu(b.get('postgres_cpu_ms'))} "
            f"| {ratio(plain):.2f}, {ratio(through):.2f} | {through['floor']['rps'] / plain['floor']['rps']:.2f} |")
    return f"""## Through PgBouncer

Get a course and record a measure again, right after their direct runs, with the API (`ipt serve` and
`ipt worker`) connected to PgBouncer 1.18 in transaction pooling mode (`IPT_DATABASE_URL`; `IPT_DATABASE_DIRECT_URL`
straight to PostgreSQL for what needs a session); the floor through the same PgBouncer (no prepared
statements) is an extra. Errors (API, floor): {", ".join(f"{r['api']['errors']}, {r['floor']['errors']}"
                                                          for r in results["pgbouncer"].values())}.

{chr(10).join(lines)}"""


def _processes(results: dict[str, dict[str, dict]], info: dict) -> str:
    checks = []
    for c in info["processes"]["checks"]:
        checks.append(
            f"- after {c['label']}: {c['events']:,} webhook events fanned out to the subscription, "
            f"**{c['delivered_once']:,} delivered exactly once** ({c['duplicated']} more than once, {c['missing']} "
            f"missing, {c['unexpected']} unexpected, {c['not_delivered']} not marked delivered, {c['bad_signatures']} "
            f"bad signatures); {c['audit_events']:,} audit events since the configuration started, "
            f"**{c['sealed']:,} sealed** ({c['unsealed']} unsealed, {c['sealed_twice']} twice); "
            f"`ipt audit verify`: {c['verify']}; all drained {c['drain_seconds']:.1f} s after the run"
            f"{'' if c['ok'] else ': **FAILED**'}")
    single = [f"{r['endpoint'].label} {r['api']['rps'] / results['direct'][n]['api']['rps']:.2f}x"
              for n, r in results["processes"].items()]
    return f"""## Two API processes and a worker behind nginx

Two `ipt serve --workers 1` processes (IPT_BACKGROUND_TASKS=false, IPT_TRUSTED_PROXIES=127.0.0.1) and one
`ipt worker` behind nginx (tests/support/nginx.py: one worker process, round-robin over both, keepalive to them,
the README's forwarding headers, no access log), against two floor
processes behind the same nginx configuration; wrk drives nginx. The benchmarked organization has a
webhook subscription for every event type to a receiver on loopback (tests/support/receiver.py, checking
each signature), so record a measure's `measure.recorded` events are delivered during the runs. After each
API run, with the worker still running, the bench waits for the outbox to be fanned out, every delivery
made and every audit event sealed, then counts deliveries by `webhook-id` at the receiver. Server CPU is
both processes' (nginx's is not counted, on either side).

{table(results["processes"])}

{details(results["processes"])}

{chr(10).join(checks)}

The API's rate with two processes against one (the direct runs above): {", ".join(single)}."""


def _each(runs: list[dict], field: str) -> str:
    return ", ".join(f"{r['api']['rps']:,.0f}" if field == "rps" else _ms(r["api"][field]) for r in runs)


def _audit(results: dict[str, dict[str, dict]], info: dict) -> str:
    a = info["audit"]
    keys = ("direct", "without_audit_2", "with_audit_1", "with_audit_2")
    header = ("| endpoint | API / floor without (run 1, run 2) | API / floor with the audit events (run 1, run 2) "
              "| API req/s without | API req/s with | API p99 without | API p99 with |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for name in results["with_audit_1"]:
        runs = [results[k][name] for k in keys]
        lines.append(
            f"| {runs[0]['endpoint'].label} | {ratio(runs[0]):.2f}, {ratio(runs[1]):.2f} "
            f"| **{ratio(runs[2]):.2f}, {ratio(runs[3]):.2f}** "
            f"| {_each(runs[:2], 'rps')} | {_each(runs[2:], 'rps')} | {_each(runs[:2], 'p99')} | {_each(runs[2:], 'p99')} |")
    m = info["machine"]
    loads = ", ".join(f"{r['api']['load']:.2f}" for k in keys for r in results[k].values())
    return f"""## With {a['events']:,} audit events

Written by `make bench-audit` (`bench/run.py --audit-events N`); each such run replaces this section only.

- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}; code: {info['revision']}; machine: nproc={m['nproc']}, {m['cpu']};
  1-minute load average before each API run: {loads}
- Data: the bench's seed (scale {info['scale']}, {info['counts']['course']:,} courses, {info['counts']['measure']:,} measures); load as
  above (`wrk -t{info['wrk'][0]} -c{info['wrk'][1]} -d{info['wrk'][2]}` after a {info['wrk'][3]} warm-up, the API with its worker).

Get a course and record a measure are measured against the floor, then once more, then {a['events']:,} audit events added
(bench/audit_seed.py: {a['description']}), then both endpoints twice more, each run against the floor
as above. Adding them took {a['seconds']:.0f} s ({a['rate']:,.0f} events/s; CPU: {a['python_cpu_s']:.0f} s in Python,
generating and hashing, {a['postgres_cpu_s']:.0f} s in PostgreSQL; then VACUUM ANALYZE {a['vacuum_seconds']:.0f} s); the audit
tables then held {a['bytes'] / 1e9:.1f} GB with their indexes. After the runs, `ipt audit seal` and
`ipt audit verify --org <the benchmarked organization>`: {a['verify']} (the runs' events chained after the seeded ones).

{chr(10).join(lines)}"""


def audit_section(results: dict[str, dict[str, dict]], info: dict) -> str:
    """make bench-audit's section of RESULTS.md."""
    return _audit(results, info)


def extra_sections(results: dict[str, dict[str, dict]], info: dict) -> list[str]:
    """The sections of the configurations run besides the direct one (issue 18)."""
    found = []
    if "pgbouncer" in results:
        found.append(_pgbouncer(results))
    if "processes" in info:
        found.append(_processes(results, info))
    return found


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


def document(by_config: dict[str, dict[str, dict]], args, info: dict) -> str:
    """The whole of RESULTS.md up to the sections other benchmarks keep."""
    results = by_config["direct"]
    api_command, floor_command = info["configs"]["direct"]
    m, c = info["machine"], info["counts"]
    env_line = "IPT_ENV=production IPT_SECRET_KEY=<random 48 bytes> IPT_RATE_LIMIT_PER_MINUTE=0 IPT_LOG_LEVEL=WARNING"
    steps = "; ".join(f"{k} {v:.0f} s" for k, v in info["timings"].items())
    commands = [
        "# IPT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ipt_bench_<random>, created and dropped by the run",
        f"IPT_DATABASE_URL=... {env_line} ipt db upgrade",
        (f"IPT_DATABASE_URL=... {env_line} ipt bootstrap --org 'Bench Organization' "
         "--admin-email admin@bench.ipt.example --admin-password <random>"),
        "# then bench/seed.py fills it by COPY (the sizes above); every account's password is one random password",
        f"IPT_DATABASE_URL=... {env_line} .venv/bin/ipt worker &",
        f"IPT_DATABASE_URL=... {env_line} IPT_BACKGROUND_TASKS=false {quote(api_command)}",
    ]
    commands += [quote(r["api"]["command"]) for r in results.values()]
    floor_env = f"FLOOR_DATABASE_URL=... FLOOR_ACTOR_ID=<the clinician's id> FLOOR_POOL_SIZE={info['pool_size']}"
    commands += ["", f"{floor_env} {quote(floor_command)}"]
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
{"".join(chr(10) + text + chr(10) for text in extra_sections(by_config, info))}
## Commands

```sh
{chr(10).join(commands)}
```
"""


def write_results(text: str) -> None:
    """Replace RESULTS.md up to the sections other runs keep (the audit events', the research export's)."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    starts = [i for marker in KEPT_SECTIONS if (i := old.find(marker)) >= 0]
    RESULTS.write_text(text + (old[min(starts):] if starts else ""))


def write_section(marker: str, text: str) -> None:
    """Replace one kept section of RESULTS.md (from ``marker`` to the next section), or add it before the later ones."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    start = old.find(marker)
    if start < 0:
        later = [i for m in KEPT_SECTIONS[KEPT_SECTIONS.index(marker) + 1:] if (i := old.find(m)) >= 0]
        start = end = min(later) if later else len(old)
    else:
        end = old.find("\n## ", start + len(marker))
        end = len(old) if end < 0 else end
    RESULTS.write_text(old[:start] + "\n" + text.strip() + "\n" + old[end:])
