"""Fixed-window rate limits: in memory for one process (Redis-backed for several comes later)."""

from __future__ import annotations

import time


class MemoryRateLimiter:
    """Counts hits per key in one-minute windows; enough for a single process."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        """Record a hit; return None if allowed, else the seconds until the window resets."""
        if limit <= 0:
            return None
        now = int(time.monotonic())
        window = now // window_seconds
        current_window, count = self._windows.get(key, (window, 0))
        if current_window != window:
            count = 0
        count += 1
        self._windows[key] = (window, count)
        if len(self._windows) > 100_000:  # forget old windows so memory stays bounded
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        if count > limit:
            return max(1, (window + 1) * window_seconds - now)
        return None
