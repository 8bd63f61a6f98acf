"""Rate limits and sign-in failure budgets: in memory for one process, or in Redis so several processes share them.

Two kinds of count live here. ``hit`` is the per-caller request limit of every protected route: fixed
one-minute windows, one INCR a request. ``admit``/``settle`` keep failure budgets for sign-in: each
budget is a sliding log of failure times (at most a few dozen entries), so its limit holds in every
window-long span, a guesser gains nothing at a window's edge, and ``Retry-After`` is exact. An
attempt is admitted atomically with a pending slot on every budget it touches; ``settle`` gives the
slot back and, if the attempt failed, logs the failure. Pending slots count against a budget's
``limit + headroom``: parallel guesses cannot overrun a budget by more than its headroom, however
many are sent at once.

When Redis does not answer (within IPT_REDIS_TIMEOUT_SECONDS, 1 s) the limiter logs an error and counts in this
process's memory for the next few seconds, then tries Redis again: limits stay on (per process:
with N processes a guesser gets at most N times a budget), and sign-in keeps working. Failing open
would give whoever can take Redis down unlimited guesses; failing closed would let them lock every
clinician out.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.core.config import Settings

log = logging.getLogger("ipt.ratelimit")

PENDING_SECONDS = 30  # a pending slot older than this belongs to an attempt whose process died: it is dropped
PENDING_RETRY = 1.0  # refused only for attempts still in flight: those settle within a second
REDIS_RETRY_SECONDS = 5.0  # after a Redis failure, count in memory this long before trying Redis again


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` (at least 1) failures in the window, and ``limit + headroom`` with the attempts in flight."""

    name: str
    limit: int
    headroom: int = 0
    label: str = ""  # what the budget is of, for the audit log: "account", "address"


@dataclass(slots=True)
class _Log:
    failures: list[float] = field(default_factory=list)  # failure times, oldest first
    pending: dict[str, float] = field(default_factory=dict)  # ticket -> admitted at
    expires_at: float = 0.0


def _wait(entry: _Log, budget: Budget, now: float, window: float) -> float:
    """Seconds until the budget admits one more attempt (0: now); the Lua of RedisRateLimiter does the same."""
    failures = entry.failures
    if len(failures) + 1 > budget.limit:
        return failures[len(failures) - budget.limit] + window - now  # until enough of the oldest age out
    if len(failures) + len(entry.pending) + 1 > budget.limit + budget.headroom:
        return PENDING_RETRY
    return 0.0


def retry_after(waits: Sequence[float]) -> int:
    """The Retry-After header for a refusal: whole seconds, at least one."""
    return max(1, math.ceil(max(waits)))


class MemoryRateLimiter:
    """Request windows and failure budgets in this process only."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._logs: dict[str, _Log] = {}

    async def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        """Record a hit; None if allowed, else the seconds until the window resets."""
        if limit <= 0:
            return None
        now = int(time.time())
        window = now // window_seconds
        current_window, count = self._windows.get(key, (window, 0))
        count = count + 1 if current_window == window else 1
        self._windows[key] = (window, count)
        if len(self._windows) > 100_000:  # forget old windows so memory stays bounded
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return None if count <= limit else max(1, (window + 1) * window_seconds - now)

    def _log(self, name: str, now: float, window: float) -> _Log:
        entry = self._logs.get(name)
        if entry is None:
            if len(self._logs) > 100_000:  # forget budgets with nothing left in them
                self._logs = {k: v for k, v in self._logs.items() if v.expires_at > now}
            entry = self._logs[name] = _Log()
        del entry.failures[: bisect.bisect_right(entry.failures, now - window)]
        for ticket in [t for t, at in entry.pending.items() if at <= now - PENDING_SECONDS]:
            del entry.pending[ticket]
        return entry

    async def admit(self, budgets: Sequence[Budget], window: float, ticket: str, now: float) -> list[float]:
        """Seconds each budget makes the attempt wait; when all are 0 it is admitted, with a pending slot on each."""
        logs = [self._log(budget.name, now, window) for budget in budgets]
        waits = [_wait(entry, budget, now, window) for budget, entry in zip(budgets, logs, strict=True)]
        if not any(waits):
            for entry in logs:
                entry.pending[ticket] = now
                entry.expires_at = max(entry.expires_at, now + PENDING_SECONDS)
        return waits

    async def settle(self, budgets: Sequence[Budget], window: float, ticket: str, now: float, failed: bool) -> None:
        """Give back the attempt's pending slots; log a failure on each budget if it failed."""
        for budget in budgets:
            entry = self._logs.get(budget.name)
            if entry is None:
                if not failed:
                    continue
                entry = self._logs[budget.name] = _Log()
            entry.pending.pop(ticket, None)
            if failed:
                bisect.insort(entry.failures, now)
                entry.expires_at = max(entry.expires_at, now + window)

    async def close(self) -> None:
        """Nothing to release."""


# KEYS: each budget's failure log and pending set, in pairs. ARGV: now, window, pending seconds, ticket,
# then each budget's limit and headroom. Returns each budget's wait; admits (adds the pending slots) only
# when every wait is 0. One round trip, atomic: parallel attempts cannot all see room.
_ADMIT = """
local now, window, pending_for, ticket = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local waits, admitted = {}, true
for i = 1, #KEYS, 2 do
  local limit, headroom = tonumber(ARGV[4 + i]), tonumber(ARGV[5 + i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now - pending_for)
  local failures, pending = redis.call('ZCARD', KEYS[i]), redis.call('ZCARD', KEYS[i + 1])
  local wait = 0
  if failures + 1 > limit then
    local oldest = redis.call('ZRANGE', KEYS[i], failures - limit, failures - limit, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window - now
  elseif failures + pending + 1 > limit + headroom then
    wait = tonumber(ARGV[#ARGV])
  end
  if wait > 0 then admitted = false end
  waits[#waits + 1] = tostring(wait)
end
if admitted then
  for i = 1, #KEYS, 2 do
    redis.call('ZADD', KEYS[i + 1], now, ticket)
    redis.call('EXPIRE', KEYS[i + 1], pending_for)
  end
end
return waits
"""

# KEYS: as above. ARGV: now, window (whole seconds), ticket, failed (1 or 0).
_SETTLE = """
for i = 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[3])
  if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[i], ARGV[1], ARGV[3])
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
return 0
"""


class RedisRateLimiter:
    """The same counts kept in Redis, shared by every API process; this process's memory while Redis is down."""

    def __init__(self, url: str, prefix: str = "ipt:", timeout: float = 1.0) -> None:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        self._redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._prefix = prefix
        self._errors = (RedisError, OSError)
        self._local = MemoryRateLimiter()
        self._redis_again_at = 0.0
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)

    def _down(self, exc: Exception) -> None:
        if time.monotonic() < self._redis_again_at:
            return  # another call in flight already found Redis down: one log line an outage
        self._redis_again_at = time.monotonic() + REDIS_RETRY_SECONDS
        log.error("Redis is not answering (%s): limits are counted in this process for %.0f s",
                  type(exc).__name__, REDIS_RETRY_SECONDS)

    def _keys(self, budgets: Sequence[Budget]) -> list[str]:
        return [f"{self._prefix}{b.name}:{part}" for b in budgets for part in ("failures", "pending")]

    async def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        """Record a hit; None if allowed, else the seconds until the window resets."""
        if limit <= 0:
            return None
        if time.monotonic() < self._redis_again_at:
            return await self._local.hit(key, limit, window_seconds)
        now = int(time.time())
        window = now // window_seconds
        redis_key = f"{self._prefix}rl:{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(redis_key).expire(redis_key, window_seconds + 5).execute()
        except self._errors as exc:
            self._down(exc)
            return await self._local.hit(key, limit, window_seconds)
        return None if count <= limit else max(1, (window + 1) * window_seconds - now)

    async def admit(self, budgets: Sequence[Budget], window: float, ticket: str, now: float) -> list[float]:
        """Seconds each budget makes the attempt wait; when all are 0 it is admitted, with a pending slot on each."""
        if time.monotonic() >= self._redis_again_at:
            args = [repr(now), window, PENDING_SECONDS, ticket, *(n for b in budgets for n in (b.limit, b.headroom)),
                    PENDING_RETRY]
            try:
                return [float(wait) for wait in await self._admit(keys=self._keys(budgets), args=args)]
            except self._errors as exc:
                self._down(exc)
        return await self._local.admit(budgets, window, ticket, now)

    async def settle(self, budgets: Sequence[Budget], window: float, ticket: str, now: float, failed: bool) -> None:
        """Give back the attempt's pending slots; log a failure on each budget if it failed."""
        if time.monotonic() >= self._redis_again_at:
            try:
                await self._settle(keys=self._keys(budgets), args=[repr(now), math.ceil(window), ticket, int(failed)])
                return
            except self._errors as exc:
                self._down(exc)
        await self._local.settle(budgets, window, ticket, now, failed)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def make_rate_limiter(settings: Settings) -> MemoryRateLimiter | RedisRateLimiter:
    """Redis when configured, else memory."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, settings.redis_key_prefix, settings.redis_timeout_seconds)
    return MemoryRateLimiter()
