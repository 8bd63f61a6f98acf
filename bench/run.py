"""Load benchmark: five endpoints of the real API at realistic scale, each against a floor that does the least possible.

One run: make sure wrk is installed; create a throwaway PostgreSQL database (dropped at the end,
even on failure); migrate it with `ipt db upgrade`; bootstrap an organization with `ipt bootstrap`;
seed it by COPY (bench/seed.py: ~50 organizations, 20,000 full courses, ~300,000 sessions, ~1,000,000
measures, plus list organizations of 10,000 and 1,000,000 courses); serve the API as production does
(`ipt serve --workers 1`, IPT_ENV=production) and drive wrk at each endpoint with real tokens; stop
it; serve the floor (bench/floor_app.py) and drive the same loads; print the table, the targets,
and write bench/RESULTS.md. The two servers never run at once. Then (issue 18) get a course and
record a measure through PgBouncer, and with two API processes and a worker behind nginx (each
webhook delivered once, each audit event sealed once); with --audit-events N (make bench-audit),
both again before and after N sealed audit events are added.

    make bench                      # or: .venv/bin/python bench/run.py --scale 0.05 -d 3s --warmup 1s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"  # git-ignored: server logs, raw wrk output, data files, profiles
NAMES = ("get_course", "list_small", "list_big", "outcomes", "record_session", "record_measure", "record_group_session")
# Upper bounds on the write rates here, to size the write pools: a run that outgrows them says so.
API_WRITE_CEILING, FLOOR_WRITE_CEILING = 1500, 3500
GROUP_WRITE_CEILINGS = (600, 3000)  # record a group session: the API's, the floor's
TOKEN_MAX_AGE = 600  # access tokens live 15 minutes: log in again well before
ADMIN_EMAIL = "admin@bench.ipt.example"
# Measured again through PgBouncer, with several processes, and with years of audit events.
EXTRA_ENDPOINTS = ("get_course", "record_measure")


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

import psycopg
from audit_seed import seed_audit
from common import BenchError, ipt_command, run_ipt, section, throwaway_database
from load import cpu_seconds, drive, ensure_wrk, profile, seconds
from processes import deliveries
from report import (
    AUDIT_SECTION,
    RESULTS,
    audit_section,
    details,
    document,
    extra_sections,
    list_line,
    machine,
    revision,
    table,
    targets,
    targets_text,
    versions,
    write_results,
    write_section,
)
from seed import POOL_ATTENDED, Seeded, Sizes, seed
from servers import free_port, get_token, http, running, serving
from workloads import LAST_MIDDLE_NUMBER, Endpoint, Workloads, endpoints, probe, same_data

from tests.support.nginx import nginx_proxy
from tests.support.pgbouncer import app_environment, pgbouncer


class Tokens:
    """Real access tokens from the password grant, one per account, renewed before they expire."""

    def __init__(self, base: str, password: str, seeded: Seeded) -> None:
        self.base, self.password = base, password
        self.emails = {"clinician": seeded.clinician_email, "admin": ADMIN_EMAIL,
                       **{k: v[1] for k, v in seeded.lists.items()}}
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
    # Record a measure is run again through PgBouncer, by two processes, and twice before and after
    # the audit events; each of those API passes writes to the pool too.
    measure_passes = api_passes + run * (args.pgbouncer + 2 * args.processes + (3 if args.audit_events else 0))
    sessions_needed = api_passes * API_WRITE_CEILING + run * FLOOR_WRITE_CEILING
    room = LAST_MIDDLE_NUMBER - POOL_ATTENDED
    return Sizes(
        courses=max(40, round(20_000 * args.scale)),
        list_small=max(200, round(10_000 * args.scale)),
        list_big=round(args.big_list * args.scale),
        session_courses=args.session_courses or math.ceil(sessions_needed / room),
        measure_courses=args.measure_courses or math.ceil(measure_passes * API_WRITE_CEILING / 5),  # ~5 new measures each
        # 16 sessions a group; a group session (8 member sessions) goes at most GROUP_WRITE_CEILINGS a second.
        groups=math.ceil((api_passes * GROUP_WRITE_CEILINGS[0] + run * GROUP_WRITE_CEILINGS[1]) / 16)
        if not args.only or "record_group_session" in args.only else 0,
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


@dataclass(frozen=True)
class Side:
    """One server under test as a configuration serves it: the API (with `ipt worker` beside it) or the floor."""

    name: str  # "api" or "floor"
    command: Callable[[int], list[str]]  # the command line for a port
    env: dict[str, str]
    ports: tuple[int, ...]  # more than one: that many processes behind nginx
    worker_env: dict[str, str] | None = None  # the API's `ipt worker`

    @property
    def floor(self) -> bool:
        return self.name == "floor"


@dataclass(frozen=True)
class Config:
    """A way of serving both sides: directly, through PgBouncer, several processes behind nginx."""

    key: str
    api: Side
    floor: Side


@contextlib.contextmanager
def served(side: Side) -> Iterator[tuple[str, list[int]]]:
    """Start the side's servers (behind nginx when there are several); yield the URL to drive and their pids."""
    with contextlib.ExitStack() as stack:
        many = len(side.ports) > 1
        started = [stack.enter_context(serving(f"{side.name}-{n + 1}" if many else side.name, side.command(port),
                                               side.env, port, OUT)) for n, port in enumerate(side.ports)]
        proxy = nginx_proxy([f"127.0.0.1:{port}" for port in side.ports], access_log=False) if many else None
        base = stack.enter_context(proxy) if proxy else started[0][0]
        yield base, [process.pid for _, process in started]


Hook = Callable[[str, "Tokens | None"], None]


class Bench:
    """What every measured run shares: wrk, the flags, the database, the workloads; results by configuration."""

    def __init__(self, wrk: str, args: argparse.Namespace, database_url: str, env: dict[str, str],
                 workloads: Workloads, password: str) -> None:
        self.wrk, self.args, self.url, self.env, self.workloads, self.password = (
            wrk, args, database_url, env, workloads, password)
        self.results: dict[str, dict[str, dict]] = {}

    def pair(self, config: Config, endpoint: Endpoint, key: str | None = None, setup: Hook | None = None,
             after: Hook | None = None) -> None:
        """The API (its worker started with it), then the floor, on one endpoint; into results[key or config.key]."""
        into = self.results.setdefault(key or config.key, {}).setdefault(endpoint.name, {"endpoint": endpoint})
        # The floor's audit rows are never sealed (it has no sealer): seal what the last run left,
        # so the API's worker seals only the API's own events, not a backlog of the floor's.
        run_ipt(self.env, "audit", "seal")
        with running("worker", [ipt_command(), "worker"], config.api.worker_env, OUT) as worker:
            started_cpu = cpu_seconds(worker.pid) or 0.0
            self.side(config.api, endpoint, into, setup, after)
            into["api"]["worker_cpu_s"] = (cpu_seconds(worker.pid) or 0.0) - started_cpu
        self.side(config.floor, endpoint, into)

    def side(self, side: Side, endpoint: Endpoint, into: dict, setup: Hook | None = None,
             after: Hook | None = None) -> None:
        """Serve one side, probe the endpoint, drive it; ``setup`` before the load, ``after`` once it is done."""
        with served(side) as (base, pids):
            tokens = None if side.floor else Tokens(base, self.password, self.workloads.seeded)
            if setup:
                setup(base, tokens)
            section(f"{side.name}{f' x{len(pids)} behind nginx' if len(pids) > 1 else ''}: {endpoint.label} "
                    f"({endpoint.request})")
            token = None if side.floor else tokens.get(endpoint.login)
            lines = self.workloads.lines(endpoint, side.floor)
            status, body = probe(base, endpoint, lines, token)
            if not 200 <= status < 300:
                raise BenchError(f"{side.name} answered {endpoint.request} with {status}: {str(body)[:400]}")
            into[f"{side.name}_probe"] = body
            prepare = self.workloads.prepare(endpoint, side.floor, token)
            result = drive(self.wrk, self.args, endpoint.script, base, prepare,
                           OUT / f"{endpoint.name}-{side.name}.wrk.txt", pids, self.url)
            into[side.name] = result
            _problems(endpoint, side.name, result, base, lines, token)
            if not side.floor and self.args.profile and endpoint.name in self.args.profile:
                section(f"Profiling the API on {endpoint.label} with py-spy (not measured)")
                profile(self.wrk, self.args, endpoint.script, base, prepare, pids[0],
                        OUT / f"api-profile-{endpoint.name}.txt", self.url)
            if after:
                after(base, tokens)


def configs(args: argparse.Namespace, env: dict[str, str], database_url: str, seeded: Seeded,
            pgbouncer_url: str | None) -> dict[str, Config]:
    """Every configuration of the run, by key."""
    from app.core.config import Settings

    def api_command(port: int) -> list[str]:
        return [ipt_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]

    def floor_command(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", "bench", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--no-proxy-headers", "--no-server-header", "--log-level", "warning"]

    # As production runs it (README): the API process answers requests only; the audit sealer and
    # webhook delivery run in `ipt worker`, on the same machine, during every API run.
    api_env = env | {"IPT_BACKGROUND_TASKS": "false"}
    floor_env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
    floor_env.update(FLOOR_DATABASE_URL=database_url, FLOOR_ACTOR_ID=seeded.clinician_id,
                     FLOOR_POOL_SIZE=str(Settings.model_fields["db_pool_size"].default))  # the API's default
    found = {"direct": Config("direct", Side("api", api_command, api_env, (args.api_port or free_port(),), env),
                              Side("floor", floor_command, floor_env, (args.floor_port or free_port(),)))}
    if pgbouncer_url:
        through = app_environment(pgbouncer_url)  # IPT_DATABASE_POOLER=pgbouncer, IPT_DATABASE_DIRECT_URL
        found["pgbouncer"] = Config(
            "pgbouncer", Side("api", api_command, api_env | through, (free_port(),), env | through),
            Side("floor", floor_command, floor_env | {"FLOOR_DATABASE_URL": pgbouncer_url, "FLOOR_PREPARE": "0"},
                 (free_port(),)))
    if args.processes:
        hooks = {"IPT_WEBHOOK_ALLOW_PRIVATE": "true", "IPT_TRUSTED_PROXIES": "127.0.0.1"}
        found["processes"] = Config(
            "processes", Side("api", api_command, api_env | hooks, (free_port(), free_port()), env | hooks),
            Side("floor", floor_command, floor_env, (free_port(), free_port())))
    return found


def bench(args: argparse.Namespace) -> int:
    from app.core.config import Settings
    from app.core.security import Secrets

    wrk = ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    for log in OUT.glob("*.log"):  # appended to by each start below
        log.unlink()
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(throwaway_database("ipt_bench"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
        env.update(IPT_DATABASE_URL=database_url, IPT_ENV="production", IPT_SECRET_KEY=secrets.token_urlsafe(48),
                   IPT_RATE_LIMIT_PER_MINUTE="0", IPT_LOG_LEVEL="WARNING")
        section("Migrating and seeding")
        run_ipt(env, "db", "upgrade")
        password = secrets.token_urlsafe(18)
        bootstrapped = run_ipt(env, "bootstrap", "--org", "Bench Organization", "--admin-email", ADMIN_EMAIL,
                               f"--admin-password={password}")  # "=": a random password may start with "-"
        org_id = json.loads(bootstrapped)["organization_id"]
        settings = Settings(env="production", database_url=database_url, secret_key=env["IPT_SECRET_KEY"])
        app_secrets = Secrets(settings)
        plan = sizes(args)
        print(f"seeding {plan}")
        started = time.monotonic()
        seeded = seed(database_url, org_id, app_secrets.hash_password(password), plan)
        seed_seconds = time.monotonic() - started
        print(f"seeded in {seed_seconds:.0f} s ({seeded.timings}): {seeded.counts}")
        info = {"revision": revision(), "counts": seeded.counts, "scale": args.scale,
                "wrk": (args.threads, args.connections, args.duration, args.warmup), "timings": seeded.timings,
                "seed_seconds": seed_seconds, "machine": machine(), "versions": versions(wrk, database_url)}
        eps = [e for e in endpoints(seeded) if not args.only or e.name in args.only]
        extra = [e for e in eps if e.name in EXTRA_ENDPOINTS]
        workloads = Workloads(database_url, seeded, app_secrets.sign, OUT, args.threads, seconds(args.duration))
        pgbouncer_url = stack.enter_context(pgbouncer(database_url)) if args.pgbouncer and extra else None
        run = Bench(wrk, args, database_url, env, workloads, password)
        found = configs(args, env, database_url, seeded, pgbouncer_url)
        direct = found["direct"]
        section(f"API: IPT_BACKGROUND_TASKS=false {' '.join(direct.api.command(direct.api.ports[0]))}, with ipt worker"
                f"\nFloor: {' '.join(direct.floor.command(direct.floor.ports[0]))}")
        # Endpoint by endpoint, the API then the floor, each started afresh: the two runs of a ratio
        # are seconds apart, not minutes, on a machine whose speed drifts (shared, noisy). The same
        # endpoint through PgBouncer follows at once, for the same reason.
        for endpoint in eps:
            run.pair(direct, endpoint)
            if "pgbouncer" in found and endpoint in extra:
                run.pair(found["pgbouncer"], endpoint)
        if args.audit_events and extra:
            info["audit"] = with_audit_events(run, direct, extra, database_url, args.audit_events)
        if "processes" in found and extra:  # last: its webhook subscription would cost every later API run
            info["processes"] = several_processes(run, found["processes"], extra, database_url, env)
        info.update(configs={k: (c.api.command(c.api.ports[0]), c.floor.command(c.floor.ports[0]))
                             for k, c in found.items()},
                    pool_size=direct.floor.env["FLOOR_POOL_SIZE"],
                    worker_cpu_seconds=sum(r["api"]["worker_cpu_s"] for r in run.results["direct"].values()))

    results = run.results
    for config in results.values():
        for r in config.values():
            r["same"] = same_data(r["endpoint"], r["api_probe"], r["floor_probe"])
    found_targets = targets(results["direct"], args.connections)
    section("Results")
    print(table(results["direct"]))
    if list_line(results["direct"]):
        print("\n" + list_line(results["direct"]))
    print("\n" + details(results["direct"]))
    print("\nTargets (issue 8):\n" + targets_text(found_targets))
    for text in extra_sections(results, info) + ([audit_section(results, info)] if "audit" in info else []):
        print("\n" + text)
    if args.no_results:
        pass
    elif args.audit_events:  # make bench-audit: its own section only
        write_section(AUDIT_SECTION, audit_section(results, info))
    else:
        write_results(document(results, args, info))
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    failed = [f"{r['endpoint'].label} ({key}, {server})" for key, config in results.items() for r in config.values()
              for server in ("api", "floor") if r[server]["errors"]]
    if failed:
        print(f"bench: requests failed (non-2xx or socket errors) in: {', '.join(failed)}; those numbers are not valid",
              file=sys.stderr)
        return 1
    broken = [c["label"] for c in info.get("processes", {}).get("checks", []) if not c["ok"]]
    if broken:
        print(f"bench: with several processes, a webhook was not delivered exactly once or an audit event not sealed "
              f"exactly once after: {', '.join(broken)}", file=sys.stderr)
        return 1
    unmet = [text for text, met, _ in found_targets if met is False]
    if unmet:
        print(f"bench: targets NOT met: {'; '.join(unmet)}", file=sys.stderr)
        return 2 if args.strict else 0
    return 0


def with_audit_events(run: Bench, config: Config, eps: list[Endpoint], database_url: str, count: int) -> dict:
    """Once more without them, then ``count`` sealed audit events added, then twice with them: the same runs each time."""
    for endpoint in eps:
        run.pair(config, endpoint, key="without_audit_2")
    run_ipt(run.env, "audit", "seal")  # every chain head where the runs left it: the seeded events go on from there
    section(f"Adding {count:,} sealed audit events (bench/audit_seed.py)")
    added = seed_audit(database_url, count)
    print(f"added in {added['seconds']:.0f} s ({added['rate']:,.0f}/s); the audit tables now take "
          f"{added['bytes'] / 1e9:.1f} GB")
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE audit_event")
        conn.execute("VACUUM ANALYZE audit_seal")
        added["vacuum_seconds"] = time.monotonic() - started
    for repeat in (1, 2):
        for endpoint in eps:
            run.pair(config, endpoint, key=f"with_audit_{repeat}")
    # The sealer took the seeded chains as its own: it chained the runs' events after them. Verified
    # for the benchmarked organization (a whole log of 50,000,000 would take the verifier's memory).
    run_ipt(run.env, "audit", "seal")
    added["verify"] = run_ipt(run.env, "audit", "verify", "--org", run.workloads.seeded.org_id).strip()
    print(added["verify"])
    return added


def several_processes(run: Bench, config: Config, eps: list[Endpoint], database_url: str,
                      env: dict[str, str]) -> dict:
    """Two API processes and a worker behind nginx against two floors behind it; the delivery and sealing checks."""
    with deliveries(database_url, env | config.api.worker_env) as hooks:
        for endpoint in eps:
            run.pair(config, endpoint, setup=lambda base, tokens: hooks.subscribe(base, tokens.get("admin")),
                     after=lambda _base, _tokens, label=endpoint.label: hooks.check(label))
        return {"checks": hooks.checks}


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
    p.add_argument("--no-pgbouncer", dest="pgbouncer", action="store_false",
                   help="leave out get a course and record a measure through PgBouncer")
    p.add_argument("--no-processes", dest="processes", action="store_false",
                   help="leave out two API processes and a worker behind nginx")
    p.add_argument("--audit-events", type=int, default=0, metavar="N",
                   help="after the runs, add N sealed audit events (make bench-audit: 50000000) and measure get a "
                        "course and record a measure twice more (default 0: not)")
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
