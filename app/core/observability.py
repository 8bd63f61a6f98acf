"""One JSON log line per request, and Prometheus metrics per route and status."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ipt.access")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counts and latency histograms, per route template, method and status (this process)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: dict[tuple[str, str, int], float] = defaultdict(float)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request."""
        key = (route, method, status)
        self.counts[key] += 1
        self.sums[key] += seconds
        row = self.buckets[key]
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                row[i] += 1

    def render(self) -> str:
        """The Prometheus text exposition format."""
        lines = ["# HELP ipt_requests_total HTTP requests by route, method and status.",
                 "# TYPE ipt_requests_total counter"]
        for (route, method, status), count in sorted(self.counts.items()):
            lines.append(f'ipt_requests_total{{route="{route}",method="{method}",status="{status}"}} {count}')
        lines += ["# HELP ipt_request_duration_seconds Request latency by route, method and status.",
                  "# TYPE ipt_request_duration_seconds histogram"]
        for key, row in sorted(self.buckets.items()):
            labels = f'route="{key[0]}",method="{key[1]}",status="{key[2]}"'
            for bound, count in zip(BUCKETS, row, strict=True):
                lines.append(f'ipt_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count}')
            lines.append(f'ipt_request_duration_seconds_bucket{{{labels},le="+Inf"}} {self.counts[key]}')
            lines.append(f"ipt_request_duration_seconds_sum{{{labels}}} {self.sums[key]:.6f}")
            lines.append(f"ipt_request_duration_seconds_count{{{labels}}} {self.counts[key]}")
        return "\n".join(lines) + "\n"


class ObservabilityMiddleware:
    """Times each request; logs one JSON line (ids, route template, status; never bodies or tokens)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(route, scope["method"], status, elapsed)
            if log.isEnabledFor(logging.INFO):
                state = scope.get("state", {})
                principal = state.get("principal")
                log.info(orjson.dumps({
                    "request_id": state.get("request_id"), "method": scope["method"], "route": route,
                    "status": status, "duration_ms": round(elapsed * 1000, 2),
                    "principal_id": principal.id if principal is not None else None,
                }).decode())
