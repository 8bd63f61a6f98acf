"""Fixed-window rate limits: in memory for one process, or in Redis so several processes share them."""

from __future__ import annotations

import time


class MemoryRateLimiter:
    """Counts hits per key in fixed windows, in this process only."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

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

    async def close(self) -> None:
        """Nothing to release."""


class RedisRateLimiter:
    """The same windows kept in Redis (INCR + EXPIRE), shared by every API process."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    async def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        """Record a hit; None if allowed, else the seconds until the window resets."""
        if limit <= 0:
            return None
        now = int(time.time())
        window = now // window_seconds
        redis_key = f"ipt:rl:{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(redis_key).expire(redis_key, window_seconds + 5).execute()
        return None if count <= limit else max(1, (window + 1) * window_seconds - now)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def make_rate_limiter(redis_url: str | None) -> MemoryRateLimiter | RedisRateLimiter:
    """Redis when configured, else memory."""
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
