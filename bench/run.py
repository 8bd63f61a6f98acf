"""Load benchmark: GET /v1/patients/{id} on the real API, against a floor that does the least possible.

One run: make sure wrk is installed; create a throwaway PostgreSQL database (dropped at the end,
even on failure); migrate it with `ipt db upgrade`; bootstrap an organization with `ipt bootstrap`;
seed a clinician and her patients (plus colleagues and other organizations); serve the API as
production does (`ipt serve --workers 1`, IPT_ENV=production); log in for a real token; drive wrk
at it; stop it; serve the floor (bench/floor_app.py: raw ASGI + psycopg pool on the same uvicorn);
drive the same wrk load; print and write bench/RESULTS.md. The two servers never run at once.

    make bench                      # or: .venv/bin/python bench/run.py --duration 30s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"  # git-ignored: logs, raw wrk output, the Lua script and id list
RESULTS = BENCH / "RESULTS.md"


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
from common import BenchError, ipt_command, run_ipt, section, throwaway_database
from seed import seed


# --- tools -----------------------------------------------------------------------------------
def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install -y wrk`) and run again.")
    if shutil.which("apt-get") is None:
        raise BenchError("wrk is not installed and there is no apt-get here; install wrk (https://github.com/wg/wrk) and run again.")
    section("Installing wrk (apt-get install -y wrk)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("`apt-get install -y wrk` did not install wrk; install it by hand and run again.")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise BenchError(f"port {port} on 127.0.0.1 is already in use") from None


# --- servers -----------------------------------------------------------------------------------
def http(method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def serving(
    name: str, command: list[str], env: dict[str, str], port: int, timeout: float = 60
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start a server in its own process group, wait for /healthz, yield its base URL and process, stop it."""
    check_port_free(port)
    log_path = OUT / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
                    raise BenchError(f"{name} exited with {process.returncode} before answering:\n  " + "\n  ".join(tail))
                with contextlib.suppress(OSError):
                    if http("GET", base + "/healthz")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} did not answer /healthz within {timeout:.0f}s (see {log_path})")
                time.sleep(0.2)
            yield base, process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it is ours: start_new_session), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def get_token(base: str, email: str, password: str) -> str:
    """A real access token from the password grant."""
    form = urllib.parse.urlencode({"grant_type": "password", "username": email, "password": password}).encode()
    status, body = http("POST", base + "/v1/auth/token", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise BenchError(f"POST /v1/auth/token answered {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


def read_patient(base: str, patient_id: str, headers: dict[str, str]) -> dict:
    status, body = http("GET", f"{base}/v1/patients/{patient_id}", headers=headers)
    if status != 200:
        raise BenchError(f"GET /v1/patients/{patient_id} answered {status}: {body[:300]!r}")
    return json.loads(body)


# --- wrk -------------------------------------------------------------------------------------
LUA = """-- Generated by bench/run.py: GET /v1/patients/{id} over real ids, in a random order per thread.
local ids = {}
for line in io.lines(%(ids)s) do ids[#ids + 1] = line end
local count = #ids
%(auth)s
local started = 0
function setup(thread)
  started = started + 1
  thread:set("seed", started)
end
function init(args)
  math.randomseed(seed or 1)
end
function request()
  return wrk.format("GET", "/v1/patients/" .. ids[math.random(count)])
end
"""


def write_lua(ids: list[str], token: str | None, name: str) -> Path:
    ids_path = OUT / "patient_ids.txt"
    ids_path.write_text("\n".join(ids) + "\n")
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else "-- the floor takes no token"
    script = OUT / f"{name}.lua"
    script.write_text(LUA % {"ids": json.dumps(str(ids_path)), "auth": auth})
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles (ms), request count and errors from `wrk --latency` output."""

    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        if not match:
            raise BenchError(f"no {percent}% latency in wrk output:\n{output}")
        return float(match.group(1)) * _UNITS[match.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if not rate or not total:
        raise BenchError(f"could not read wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(rate.group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": int(total.group(1)),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0),
    }


def wrk_command(wrk: str, args: argparse.Namespace, script: Path, base: str, duration: str) -> list[str]:
    return [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}", "--latency", "--timeout", "5s", "-s", str(script), base]


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used, from /proc (None when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend connected to the benchmark database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )]
    return {pid: cpu for pid in pids if (cpu := _cpu_seconds(pid)) is not None}


def drive(wrk: str, args: argparse.Namespace, script: Path, base: str, name: str, pid: int, database_url: str) -> dict:
    """A warm-up (discarded), then the measured run, with the CPU the server and PostgreSQL spent on it."""
    if args.warmup and args.warmup not in ("0", "0s"):
        subprocess.run(wrk_command(wrk, args, script, base, args.warmup), capture_output=True, check=True, stdin=subprocess.DEVNULL)
    command = wrk_command(wrk, args, script, base, args.duration)
    load = os.getloadavg()[0]
    server_before, postgres_before = _cpu_seconds(pid), _backends_cpu(database_url)
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    server_after, postgres_after = _cpu_seconds(pid), _backends_cpu(database_url)
    (OUT / f"{name}.wrk.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    print(done.stdout.rstrip())
    result = {**parse_wrk(done.stdout), "command": command, "load": load}
    n = max(result["requests"], 1)
    if server_before is not None and server_after is not None:
        result["server_cpu_ms"] = (server_after - server_before) * 1000 / n
    if postgres_after:
        spent = sum(cpu - postgres_before.get(p, 0.0) for p, cpu in postgres_after.items())
        result["postgres_cpu_ms"] = spent * 1000 / n
    return result


# --- profile -------------------------------------------------------------------------------
def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([smh]?)", duration.strip())
    if not match:
        raise BenchError(f"cannot read the duration {duration!r} (use e.g. 10s, 2m)")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _bucket(frame: str) -> str:
    """Where a py-spy frame's code lives: app/<module>, a top-level package, or the standard library."""
    if "(" not in frame:
        return "(no Python frame)"
    location = frame.rsplit("(", 1)[1].rsplit(":", 1)[0]
    if location.startswith("app/"):
        return "app/" + location.split("/")[1].removesuffix(".py")
    if "/" in location:
        return location.split("/")[0]  # py-spy shortens paths to the package: psycopg/..., sqlalchemy/...
    return "stdlib"


def profile(wrk: str, args: argparse.Namespace, script: Path, base: str, pid: int) -> None:
    """Sample the API with py-spy while wrk drives it again; write collapsed stacks and print where time goes."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        print("--profile needs py-spy in the venv: .venv/bin/pip install py-spy", file=sys.stderr)
        return
    section("Profiling the API with py-spy (not measured)")
    raw = OUT / "api-profile.txt"
    seconds = _seconds(args.duration)
    sampler = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--gil", "--format", "raw",
         "--duration", str(seconds), "--output", str(raw)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1)
    subprocess.run(wrk_command(wrk, args, script, base, f"{seconds}s"), capture_output=True, stdin=subprocess.DEVNULL, check=False)
    _, err = sampler.communicate(timeout=seconds + 30)
    if sampler.returncode != 0 or not raw.exists():
        print(f"py-spy failed: {err.strip()}", file=sys.stderr)
        return
    own: dict[str, int] = {}
    leaves: dict[str, int] = {}
    on_stack: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        own[_bucket(frames[-1])] = own.get(_bucket(frames[-1]), 0) + n
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
        for bucket in {_bucket(f).split("/")[0] for f in frames}:
            on_stack[bucket] = on_stack.get(bucket, 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    print(f"{total} samples; own time by where the code lives:")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n / total:6.1%}  {name}")
    print("samples with the package anywhere on the stack (inclusive):")
    for name, n in sorted(on_stack.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n / total:6.1%}  {name}")
    print("own time of the hottest lines:")
    for frame, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n / total:6.1%}  {frame}")
    print("inclusive time of the app's functions and the heaviest calls below the middleware:")
    below = [(f, n) for f, n in inclusive.items() if n / total < 0.4 or f.split("(")[-1].startswith("app/")]
    for frame, n in sorted(below, key=lambda kv: -kv[1])[:20]:
        print(f"  {n / total:6.1%}  {frame}")
    print(f"collapsed stacks: {raw.relative_to(ROOT)} (feed to flamegraph.pl or speedscope)")


# --- report ----------------------------------------------------------------------------------
def table(results: dict[str, dict]) -> str:
    """The results as a Markdown table, with the API/floor ratios under it."""
    api, floor = results["api"], results["floor"]

    def ms(value: float | None) -> str:
        return f"{value:.2f} ms" if value is not None else "n/a"

    lines = [
        "| server | requests/s | p50 | p99 | server CPU / request | PostgreSQL CPU / request | requests | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in (("API (`ipt serve`, the whole request path)", api), ("floor (raw ASGI + psycopg pool, one SELECT)", floor)):
        lines.append(
            f"| {label} | {r['rps']:,.0f} | {ms(r['p50'])} | {ms(r['p99'])} | {ms(r.get('server_cpu_ms'))} "
            f"| {ms(r.get('postgres_cpu_ms'))} | {r['requests']:,} | {r['errors']} |"
        )
    ratio = api["rps"] / floor["rps"] if floor["rps"] else float("nan")
    lines += ["", f"**API / floor rate: {ratio:.2f}** (the API serves {ratio:.0%} of the floor's requests per second)"]
    if api.get("server_cpu_ms") and floor.get("server_cpu_ms"):
        lines.append(
            f"Server CPU per request, API / floor: {api['server_cpu_ms'] / floor['server_cpu_ms']:.1f}x. "
            f"1-minute load average before each run: API {api['load']:.2f}, floor {floor['load']:.2f}."
        )
    return "\n".join(lines)


def _quote(command: list[str]) -> str:
    return shlex.join(str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c for c in command)


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
    from importlib.metadata import version

    found = {name: version(name) for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg", "uvloop", "httptools")}
    with psycopg.connect(database_url) as conn:
        found["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    banner = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout.split()
    found["wrk"] = banner[1] if len(banner) > 1 else "?"
    return found


def write_results(results: dict, args: argparse.Namespace, info: dict) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    m = info["machine"]
    env_line = "IPT_ENV=production IPT_SECRET_KEY=<random 48 bytes> IPT_RATE_LIMIT_PER_MINUTE=0 IPT_LOG_LEVEL=WARNING"
    counts = info["counts"]
    text = f"""# Benchmark results

Written by `bench/run.py` (`make bench`); each run replaces this file. See bench/README.md.

- Date: {when}
- Code: {info['revision']}
- Machine: nproc={m['nproc']}, {m['cpu']}; {m['os']}; Python {m['python']}
- Versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}
- Data: {counts['organizations']} organizations, {counts['users']} users, {counts['patients']:,} patients;
  the token is the clinician's who created {info['ids']:,} of them, and wrk reads those at random.
- Load: `wrk -t{args.threads} -c{args.connections} -d{args.duration}` after a {args.warmup} warm-up; wrk, the server
  and PostgreSQL share the machine's {m['nproc']} cores. The two servers ran one after the other, never together.
- Same response: {info['same_body']}

{table(results)}

## Commands

```sh
# API (IPT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ipt_bench_<random>)
IPT_DATABASE_URL=... {env_line} ipt db upgrade
IPT_DATABASE_URL=... {env_line} ipt bootstrap --org 'Bench Organization' --admin-email admin@bench.ipt.example --admin-password <random>
IPT_DATABASE_URL=... {env_line} {_quote(info['api_command'])}
{_quote(results['api']['command'])}

# floor
FLOOR_DATABASE_URL=... {_quote(info['floor_command'])}
{_quote(results['floor']['command'])}
```
"""
    # Other benchmarks (bench/export_bench.py) keep their own "## ..." sections after this one.
    kept = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        start = old.find("\n## Research export")
        kept = old[start:] if start >= 0 else ""
    RESULTS.write_text(text + kept)
    return text


# --- the run ---------------------------------------------------------------------------------
def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: servers stopped, database dropped


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=10_000, help="patients of the benchmark clinician (default 10000)")
    p.add_argument("--other-orgs", type=int, default=3, help="other organizations, each with patients/4 patients")
    p.add_argument("--threads", "-t", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--duration", "-d", default="10s", help="measured wrk duration (default 10s)")
    p.add_argument("--warmup", default="3s", help="wrk warm-up before each measurement, discarded (default 3s; 0 for none)")
    p.add_argument("--api-port", type=int, default=0, help="default: a free port")
    p.add_argument("--floor-port", type=int, default=0, help="default: a free port")
    p.add_argument("--profile", action="store_true",
                   help="after the API's measured run, sample it with py-spy under the same load (unmeasured) and summarize")
    p.add_argument("--no-results", action="store_true", help="print the table but do not rewrite bench/RESULTS.md")
    return p.parse_args(argv)


def bench(args: argparse.Namespace) -> int:
    from app.core.config import Settings
    from app.core.security import Secrets

    wrk = ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    with throwaway_database("ipt_bench") as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
        env.update(
            IPT_DATABASE_URL=database_url,
            IPT_ENV="production",
            IPT_SECRET_KEY=secrets.token_urlsafe(48),
            IPT_RATE_LIMIT_PER_MINUTE="0",
            IPT_LOG_LEVEL="WARNING",
        )
        section("Migrating and seeding")
        run_ipt(env, "db", "upgrade")
        admin_password = secrets.token_urlsafe(18)
        org_id = json.loads(
            run_ipt(env, "bootstrap", "--org", "Bench Organization", "--admin-email", "admin@bench.ipt.example",
                    "--admin-password", admin_password)
        )["organization_id"]
        password = secrets.token_urlsafe(18)
        settings = Settings(env="production", database_url=database_url, secret_key=env["IPT_SECRET_KEY"])
        started = time.monotonic()
        seeded = seed(database_url, org_id, Secrets(settings).hash_password(password), password,
                      patients=args.patients, other_orgs=args.other_orgs)
        print(f"seeded {seeded.counts} in {time.monotonic() - started:.1f}s")
        info = {"revision": revision(), "counts": seeded.counts, "ids": len(seeded.patient_ids), "machine": machine(),
                "versions": versions(wrk, database_url)}
        probe = seeded.patient_ids[len(seeded.patient_ids) // 2]
        results: dict[str, dict] = {}

        api_port = args.api_port or free_port()
        api_command = [ipt_command(), "serve", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
        section(f"API: {_quote(api_command)}")
        with serving("api", api_command, env, api_port) as (base, process):
            token = get_token(base, seeded.clinician_email, password)
            api_body = read_patient(base, probe, {"Authorization": f"Bearer {token}"})
            script = write_lua(seeded.patient_ids, token, "api")
            results["api"] = drive(wrk, args, script, base, "api", process.pid, database_url)
            if args.profile:
                profile(wrk, args, script, base, process.pid)

        floor_port = args.floor_port or free_port()
        floor_env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
        floor_env["FLOOR_DATABASE_URL"] = database_url
        floor_command = [
            sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", "bench", "--host", "127.0.0.1",
            "--port", str(floor_port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--no-proxy-headers", "--no-server-header", "--log-level", "warning",
        ]
        section(f"Floor: {_quote(floor_command)}")
        with serving("floor", floor_command, floor_env, floor_port) as (base, process):
            floor_body = read_patient(base, probe, {})
            script = write_lua(seeded.patient_ids, None, "floor")
            results["floor"] = drive(wrk, args, script, base, "floor", process.pid, database_url)

    info.update(api_command=api_command, floor_command=floor_command,
                same_body="yes, the API and the floor return the same JSON for a patient" if api_body == floor_body
                else f"NO: API {api_body} vs floor {floor_body}")
    section("Results")
    print(table(results))
    if not args.no_results:
        write_results(results, args, info)
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    if any(r["errors"] for r in results.values()):
        print("bench: some requests failed (non-2xx or socket errors): the numbers above are not valid", file=sys.stderr)
        return 1
    return 0


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
