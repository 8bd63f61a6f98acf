"""What the proxy-headers middleware costs a request: microseconds per call, in process, no I/O.

    .venv/bin/python bench/proxy_bench.py

Drives the middleware's coroutine by hand over the scope uvicorn builds for a request nginx forwarded
(the README's headers plus a browser's usual dozen), against the inner app called bare. Without
IPT_TRUSTED_PROXIES the middleware is not installed, so it costs nothing there.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.proxy import ProxyHeadersMiddleware, TrustedProxies

HEADERS = [
    (b"host", b"ipt"), (b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"api.clinic.example"), (b"connection", b"close"), (b"user-agent", b"Mozilla/5.0 (X11)"),
    (b"accept", b"application/json"), (b"accept-encoding", b"gzip, deflate, br"), (b"accept-language", b"en"),
    (b"authorization", b"Bearer " + b"x" * 300), (b"x-request-id", b"0123456789abcdef"),
]


async def inner(scope, receive, send) -> None:
    """The rest of the app, here doing nothing."""


def per_call_us(app, peer: str, rounds: int = 200_000) -> float:
    """Microseconds per call, the scope built afresh each time as uvicorn does (its cost subtracted)."""
    started = time.perf_counter()
    for _ in range(rounds):
        scope = {"type": "http", "client": (peer, 50000), "scheme": "http", "headers": list(HEADERS)}
        try:
            app(scope, None, None).send(None)
        except StopIteration:
            pass
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    single = ProxyHeadersMiddleware(inner, TrustedProxies(["127.0.0.2"]))
    networks = ProxyHeadersMiddleware(inner, TrustedProxies(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]))
    cases = {"bare inner app": (inner, "127.0.0.2"), "trusted proxy (one address)": (single, "127.0.0.2"),
             "trusted proxy (three networks)": (networks, "10.1.2.3"), "untrusted peer (one address)": (single, "127.0.0.1"),
             "untrusted peer (three networks)": (networks, "127.0.0.1")}
    results = {name: statistics.median(per_call_us(app, peer) for _ in range(5)) for name, (app, peer) in cases.items()}
    floor = results["bare inner app"]
    for name, value in results.items():
        print(f"{name:34} {value:6.2f} us/call" + ("" if value is floor else f"   (+{value - floor:.2f} us)"))


if __name__ == "__main__":
    main()
