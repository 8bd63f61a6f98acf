"""Load benchmark: five endpoints of the real API at realistic scale, each against a floor that does the least possible.

One run: make sure wrk is installed; create a throwaway PostgreSQL database (dropped at the end,
even on failure); migrate it with `ipt db upgrade`; bootstrap an organization with `ipt bootstrap`;
seed it by COPY (bench/seed.py: ~50 organizations, 20,000 full courses, ~300,000 sessions, ~1,000,000
measures, plus list organizations of 10,000 and 1,000,000 courses); serve the API as production does
(`ipt serve --workers 1`, IPT_ENV=production) and drive wrk at each endpoint with real tokens; stop
it; serve the floor (bench/floor_app.py) and drive the same loads; print the table, the targets,
and write bench/RESULTS.md. The two servers never run at once.

    make bench                      # or: .venv/bin/python bench/run.py --scale 0.05 -d 3s --warmup 1s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"  # git-ignored: server logs, raw wrk output, data files, profiles
NAMES = ("get_course", "list_small", "list_big", "outcomes", "record_session", "record_measure")
# Upper bounds on the write rates here, to size the write pools: a run that outgrows them says so.
API_WRITE_CEILING, FLOOR_WRITE_CEILING = 1500, 3500
TOKEN_MAX_AGE = 600  # access tokens live 15 minutes: log in again well before


def _use_project_venv() -> None:
    """Re-run under .venv/bin/python when started with a Python that lacks the app (e.g. `python3 bench/run.py`)."""
    try:
        import psycopg  # noqa: F401

        import app  # noqa: F401
    except ImportError:
        venv = ROOT / ".venv"
        if (venv / "bin" / "python").exists() and Path(sys.prefix).resolve() != venv.resolve():
            os.execv(str(venv / "bin" / "python"), [str(venv / "bin" / "python"), *sys.argv])
        sys.exit("bench: the app is not installed; run `make bench` (it installs the venv first)")


_use_project_venv()
sys.path[:0] = [str(ROOT), str(BENCH)]

from common import BenchError, ipt_command, run_ipt, section, throwaway_database
from load import cpu_seconds, drive, ensure_wrk, profile, seconds
from report import (
    RESULTS,
    details,
    document,
    list_line,
    machine,
    revision,
    table,
    targets,
    targets_text,
    versions,
    write_results,
)
from seed import POOL_ATTENDED, Seeded, Sizes, seed
from servers import free_port, get_token, http, running, serving
from workloads import LAST_MIDDLE_NUMBER, Endpoint, Workloads, endpoints, probe, same_data


class Tokens:
    """Real access tokens from the password grant, one per account, renewed before they expire."""

    def __init__(self, base: str, password: str, seeded: Seeded) -> None:
        self.base, self.password = base, password
        self.emails = {"clinician": seeded.clinician_email, **{k: v[1] for k, v in seeded.lists.items()}}
        self.cache: dict[str, tuple[str, float]] = {}

    def get(self, login: str) -> str:
        # Not "at = 0.0" for a missing token: monotonic time starts at boot, which can be minutes ago.
        token, at = self.cache.get(login, (None, 0.0))
        if token is None or time.monotonic() - at > TOKEN_MAX_AGE:
            token, at = get_token(self.base, self.emails[login], self.password), time.monotonic()
            self.cache[login] = (token, at)
        return token


def sizes(args: argparse.Namespace) -> Sizes:
    """What to seed: the data scaled by --scale; the write pools sized for the runs' length."""
    run = seconds(args.warmup) + seconds(args.duration)
    api_passes = run + (seconds(args.duration) if args.profile else 0)
    sessions_needed = api_passes * API_WRITE_CEILING + run * FLOOR_WRITE_CEILING
    room = LAST_MIDDLE_NUMBER - POOL_ATTENDED
    return Sizes(
        courses=max(40, round(20_000 * args.scale)),
        list_small=max(200, round(10_000 * args.scale)),
        list_big=round(args.big_list * args.scale),
        session_courses=args.session_courses or math.ceil(sessions_needed / room),
        measure_courses=args.measure_courses or math.ceil(api_passes * API_WRITE_CEILING / 5),  # ~5 new measures each
    )


def _problems(endpoint: Endpoint, server: str, result: dict, base: str, lines: list[str], token: str | None) -> None:
    """Say why a run had errors: the pool ran out, the statuses write.lua saw, or a failing read."""
    if not result["errors"]:
        return
    print(f"!! {server} {endpoint.label}: {result['errors']} requests failed", file=sys.stderr)
    if result["ran_out"]:
        print(f"!! the write pool ran out ({result['ran_out']} requests had no prepared body left): run again with a "
              "bigger --session-courses / --measure-courses", file=sys.stderr)
    for status, n in result["statuses"].items():
        print(f"!!   status {status}: {n}", file=sys.stderr)
    if result["first_error"]:
        print(f"!!   first error body: {result['first_error']}", file=sys.stderr)
    if not endpoint.write:  # read.lua keeps no bodies: ask again, one at a time
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for path in lines[:: max(1, len(lines) // 50)]:
            status, body = http("GET", base + path, headers=headers)
            if not 200 <= status < 300:
                print(f"!!   GET {path} -> {status}: {body[:300]!r}", file=sys.stderr)
                break


def run_server(name: str, wrk: str, args: argparse.Namespace, command: list[str], env: dict[str, str],
               port: int, eps: list[Endpoint], workloads: Workloads, database_url: str, results: dict,
               password: str | None = None) -> None:
    """Serve one server and drive every endpoint at it in turn; results land in results[endpoint][name]."""
    floor = name == "floor"
    with serving(name, command, env, port, OUT) as (base, process):
        tokens = None if floor else Tokens(base, password, workloads.seeded)
        for endpoint in eps:
            section(f"{name}: {endpoint.label} ({endpoint.request})")
            token = None if floor else tokens.get(endpoint.login)
            lines = workloads.lines(endpoint, floor)
            status, body = probe(base, endpoint, lines, token)
            if not 200 <= status < 300:
                raise BenchError(f"{name} answered {endpoint.request} with {status}: {str(body)[:400]}")
            results[endpoint.name][f"{name}_probe"] = body
            prepare = workloads.prepare(endpoint, floor, token)
            result = drive(wrk, args, endpoint.script, base, prepare, OUT / f"{endpoint.name}-{name}.wrk.txt",
                           process.pid, database_url)
            results[endpoint.name][name] = result
            _problems(endpoint, name, result, base, lines, token)
            if not floor and args.profile and endpoint.name in args.profile:
                section(f"Profiling the API on {endpoint.label} with py-spy (not measured)")
                profile(wrk, args, endpoint.script, base, prepare, process.pid,
                        OUT / f"api-profile-{endpoint.name}.txt", database_url)


def bench(args: argparse.Namespace) -> int:
    from app.core.config import Settings
    from app.core.security import Secrets

    wrk = ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("api", "floor", "worker"):  # appended to by each start below
        (OUT / f"{name}.log").unlink(missing_ok=True)
    with throwaway_database("ipt_bench") as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
        env.update(IPT_DATABASE_URL=database_url, IPT_ENV="production", IPT_SECRET_KEY=secrets.token_urlsafe(48),
                   IPT_RATE_LIMIT_PER_MINUTE="0", IPT_LOG_LEVEL="WARNING")
        section("Migrating and seeding")
        run_ipt(env, "db", "upgrade")
        bootstrapped = run_ipt(env, "bootstrap", "--org", "Bench Organization", "--admin-email",
                               "admin@bench.ipt.example", "--admin-password", secrets.token_urlsafe(18))
        org_id = json.loads(bootstrapped)["organization_id"]
        password = secrets.token_urlsafe(18)
        settings = Settings(env="production", database_url=database_url, secret_key=env["IPT_SECRET_KEY"])
        app_secrets = Secrets(settings)
        plan = sizes(args)
        print(f"seeding {plan}")
        started = time.monotonic()
        seeded = seed(database_url, org_id, app_secrets.hash_password(password), plan)
        seed_seconds = time.monotonic() - started
        print(f"seeded in {seed_seconds:.0f} s ({seeded.timings}): {seeded.counts}")
        info = {"revision": revision(), "counts": seeded.counts, "timings": seeded.timings,
                "seed_seconds": seed_seconds, "machine": machine(), "versions": versions(wrk, database_url)}
        eps = [e for e in endpoints(seeded) if not args.only or e.name in args.only]
        workloads = Workloads(database_url, seeded, app_secrets.sign, OUT, args.threads, seconds(args.duration))
        results: dict[str, dict] = {e.name: {"endpoint": e} for e in eps}

        api_port = args.api_port or free_port()
        api_command = [ipt_command(), "serve", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
        worker_command = [ipt_command(), "worker"]
        # As production runs it (README): the API process answers requests only; the audit sealer and
        # webhook delivery run in `ipt worker`, on the same machine, during every API run.
        api_env = env | {"IPT_BACKGROUND_TASKS": "false"}
        floor_port = args.floor_port or free_port()
        floor_env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
        floor_env.update(FLOOR_DATABASE_URL=database_url, FLOOR_ACTOR_ID=seeded.clinician_id,
                         FLOOR_POOL_SIZE=str(Settings.model_fields["db_pool_size"].default))  # the API's default
        floor_command = [
            sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", "bench", "--host", "127.0.0.1",
            "--port", str(floor_port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--no-proxy-headers", "--no-server-header", "--log-level", "warning",
        ]
        section(f"API: IPT_BACKGROUND_TASKS=false {' '.join(api_command)}, with {' '.join(worker_command)}\n"
                f"Floor: {' '.join(floor_command)}")
        # Endpoint by endpoint, the API then the floor, each started afresh: the two runs of a ratio
        # are seconds apart, not minutes, on a machine whose speed drifts (shared, noisy).
        info["worker_cpu_seconds"] = 0.0
        for endpoint in eps:
            # The floor's audit rows are never sealed (it has no sealer): seal what the last run left,
            # so the API's worker seals only the API's own events, not a backlog of the floor's.
            run_ipt(env, "audit", "seal")
            with running("worker", worker_command, env, OUT) as worker:
                started_cpu = cpu_seconds(worker.pid) or 0.0
                run_server("api", wrk, args, api_command, api_env, api_port, [endpoint], workloads, database_url,
                           results, password)
                info["worker_cpu_seconds"] += (cpu_seconds(worker.pid) or 0.0) - started_cpu
            run_server("floor", wrk, args, floor_command, floor_env, floor_port, [endpoint], workloads, database_url,
                       results)

    for r in results.values():
        r["same"] = same_data(r["endpoint"], r["api_probe"], r["floor_probe"])
    info.update(api_command=api_command, worker_command=worker_command, floor_command=floor_command,
                pool_size=floor_env["FLOOR_POOL_SIZE"])
    found = targets(results, args.connections)
    section("Results")
    print(table(results))
    if list_line(results):
        print("\n" + list_line(results))
    print("\n" + details(results))
    print("\nTargets (issue 8):\n" + targets_text(found))
    if not args.no_results:
        write_results(document(results, args, info))
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    failed = [f"{r['endpoint'].label} ({server})" for r in results.values() for server in ("api", "floor")
              if r[server]["errors"]]
    if failed:
        print(f"bench: requests failed (non-2xx or socket errors) in: {', '.join(failed)}; those numbers are not valid",
              file=sys.stderr)
        return 1
    unmet = [text for text, met, _ in found if met is False]
    if unmet:
        print(f"bench: targets NOT met: {'; '.join(unmet)}", file=sys.stderr)
        return 2 if args.strict else 0
    return 0


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: servers stopped, database dropped


def _names(value: str) -> set[str]:
    names = {n.strip() for n in value.split(",") if n.strip()}
    unknown = names - set(NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown endpoint(s) {sorted(unknown)}; choose from {', '.join(NAMES)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the seeded data (default 1; 0.05 for a quick run)")
    p.add_argument("--big-list", type=int, default=1_000_000,
                   help="courses of the big list organization, before --scale (default 1000000; 0: none)")
    p.add_argument("--session-courses", type=int, default=0,
                   help="write pool for record a session (default: sized for the run)")
    p.add_argument("--measure-courses", type=int, default=0,
                   help="write pool for record a measure (default: sized for the run)")
    p.add_argument("--only", type=_names, default=None, help=f"comma-separated endpoints to run, of {', '.join(NAMES)}")
    p.add_argument("--threads", "-t", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--duration", "-d", default="10s", help="measured wrk duration per endpoint (default 10s)")
    p.add_argument("--warmup", default="3s",
                   help="wrk warm-up before each measurement, discarded (default 3s; 0 for none)")
    p.add_argument("--api-port", type=int, default=0, help="default: a free port")
    p.add_argument("--floor-port", type=int, default=0, help="default: a free port")
    p.add_argument("--profile", type=_names, nargs="?", const=set(NAMES), default=None,
                   help="after the API's measured run of these endpoints (default all), sample it with py-spy "
                        "under the same load (unmeasured) and summarize")
    p.add_argument("--strict", action="store_true", help="exit 2 when a target is not met (default: say so, exit 0)")
    p.add_argument("--no-results", action="store_true", help="print the table but do not rewrite bench/RESULTS.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        return bench(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
