"""Driving wrk: a warm-up, the measured run, its numbers, and the CPU the server and PostgreSQL spent on it."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from common import ROOT, BenchError, section

LUA = ROOT / "bench" / "lua"
READ_SCRIPT, WRITE_SCRIPT = LUA / "read.lua", LUA / "write.lua"
Prepare = Callable[[], list[str]]  # writes the data file for the next wrk invocation; returns the script's arguments


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install -y wrk`) "
                         "and run again.")
    if shutil.which("apt-get") is None:
        raise BenchError("wrk is not installed and there is no apt-get here; install wrk "
                         "(https://github.com/wg/wrk) and run again.")
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


def wrk_command(wrk: str, args: argparse.Namespace, script: Path, base: str, duration: str,
                script_args: list[str]) -> list[str]:
    return [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}", "--latency", "--timeout", "5s",
            "-s", str(script), base, "--", *script_args]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles (ms), requests, errors, and what write.lua reported, from `wrk --latency`."""

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
    statuses: dict[str, int] = {}
    for status, n in re.findall(r"^BENCH-STATUS (\d+) (\d+)$", output, re.MULTILINE):
        statuses[status] = statuses.get(status, 0) + int(n)
    first_error = re.search(r"^BENCH-FIRST-ERROR (.*)$", output, re.MULTILINE)
    return {
        "rps": float(rate.group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": int(total.group(1)),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0),
        "ran_out": sum(int(n) for n in re.findall(r"^BENCH-RAN-OUT (\d+)$", output, re.MULTILINE)),
        "statuses": statuses,
        "first_error": first_error.group(1) if first_error else None,
    }


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used, from /proc (None when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend connected to the benchmark database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )]
    return {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}


def settle(database_url: str, timeout: float = 10.0) -> None:
    """Wait until the requests wrk left in flight have finished: no backend of the database busy twice running.

    wrk stops on time and drops the requests it is waiting for, but the server still answers
    them; the next write run must be prepared from the state they leave behind.
    """
    time.sleep(0.3)
    deadline, quiet = time.monotonic() + timeout, 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        while quiet < 2 and time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state IN ('active', 'idle in transaction')").fetchone()[0]
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.05)


QUIET_FSYNC_SECONDS = 0.01  # an fsync slower than this means the disk is still busy
QUIET_FOR = 100  # fsyncs in a row, 10 ms apart: a second of a quiet disk
QUIET_WAIT_SECONDS = 30.0


def quiet_disk(database_url: str, probe: Path) -> None:
    """Write back what earlier runs left dirty (a checkpoint, then sync), then wait for the disk to answer promptly.

    Linux writes a file's dirty pages back 30 s after they were first dirtied (vm.dirty_expire_centisecs).
    Here, a probe fsyncing every 10 ms beside the runs saw that burst stall fsync for 120 to 420 ms,
    and so PostgreSQL's WAL flush at every commit: a stall in a measured run put its p99 at 330 ms,
    the API's or the floor's, whichever ran then. The warm-up and the measured run that follow take
    well under 30 s, so what they write is written back after them. After the seed's gigabytes the
    disk stayed slow for seconds after sync returned (fsyncs of 40-130 ms): hence the wait for a
    second of prompt fsyncs (30 s at most), measured on ``probe``, on the same disk as PostgreSQL's
    data here.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    os.sync()
    deadline, prompt = time.monotonic() + QUIET_WAIT_SECONDS, 0
    with open(probe, "wb") as f:
        while prompt < QUIET_FOR and time.monotonic() < deadline:
            started = time.monotonic()
            f.write(b"\0" * 512)
            f.flush()
            os.fsync(f.fileno())
            prompt = prompt + 1 if time.monotonic() - started < QUIET_FSYNC_SECONDS else 0
            time.sleep(0.01)
    if prompt < QUIET_FOR:
        print(f"(the disk was still slow to fsync after {QUIET_WAIT_SECONDS:.0f} s; measuring anyway)")


def _cpu_of(pids: list[int]) -> float | None:
    spent = [cpu_seconds(pid) for pid in pids]
    return None if None in spent else sum(spent)


def drive(wrk: str, args: argparse.Namespace, script: Path, base: str, prepare: Prepare, out: Path, pids: list[int],
          database_url: str) -> dict:
    """A quiet disk, a warm-up (discarded), then the measured run, with the CPU the servers and PostgreSQL spent on it."""
    quiet_disk(database_url, out.with_name("fsync-probe"))
    if args.warmup and args.warmup not in ("0", "0s"):
        warm = subprocess.run(wrk_command(wrk, args, script, base, args.warmup, prepare()), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False)
        if warm.returncode != 0:
            raise BenchError(f"wrk (warm-up) failed ({warm.returncode}): {warm.stderr.strip()}")
        settle(database_url)
    command = wrk_command(wrk, args, script, base, args.duration, prepare())
    load = os.getloadavg()[0]
    server_before, postgres_before = _cpu_of(pids), backends_cpu(database_url)
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    server_after, postgres_after = _cpu_of(pids), backends_cpu(database_url)
    settle(database_url)
    out.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    print("\n".join(line for line in done.stdout.rstrip().splitlines() if not line.startswith("BENCH-")))
    result = {**parse_wrk(done.stdout), "command": command, "load": load}
    n = max(result["requests"], 1)
    if server_before is not None and server_after is not None:
        result["server_cpu_ms"] = (server_after - server_before) * 1000 / n
    if postgres_after:
        spent = sum(cpu - postgres_before.get(p, 0.0) for p, cpu in postgres_after.items())
        result["postgres_cpu_ms"] = spent * 1000 / n
    return result


# --- profile -------------------------------------------------------------------------------
def seconds(duration: str) -> int:
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


def profile(wrk: str, args: argparse.Namespace, script: Path, base: str, prepare: Prepare, pid: int, raw: Path,
            database_url: str) -> None:
    """Sample the API with py-spy while wrk drives it again; write collapsed stacks and print where time goes."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        print("--profile needs py-spy in the venv: .venv/bin/pip install py-spy", file=sys.stderr)
        return
    length = seconds(args.duration)
    sampler = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--gil", "--format", "raw",
         "--duration", str(length), "--output", str(raw)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1)
    subprocess.run(wrk_command(wrk, args, script, base, f"{length}s", prepare()), capture_output=True,
                   stdin=subprocess.DEVNULL, check=False)
    settle(database_url)
    _, err = sampler.communicate(timeout=length + 30)
    if sampler.returncode != 0 or not raw.exists():
        print(f"py-spy failed: {err.strip()}", file=sys.stderr)
        return
    _summarize(raw)


def _summarize(raw: Path) -> None:
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
    if not total:
        print("py-spy took no samples")
        return
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
