"""The shared Redis of the test setup (.ci/run starts it), used only under key prefixes a test owns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

REDIS_URL = "redis://127.0.0.1:6379/0"
# The test machine is shared: under `make test` a process's event loop can stall past the service's 1 s
# Redis timeout, and the limiter would fall back to memory (its own test proves that) mid-test.
REDIS_TIMEOUT_SECONDS = 10


@contextmanager
def redis_prefix(expect_keys: bool = True) -> Iterator[str]:
    """A key prefix of the caller's own; every key under it is deleted afterwards (CI may share this Redis)."""
    import redis

    prefix = f"ipt-test:{uuid.uuid4().hex}:"
    store = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    store.ping()  # without Redis the test fails rather than pass vacuously
    try:
        yield prefix
        if expect_keys:
            assert list(store.scan_iter(f"{prefix}*")), "nothing was counted in Redis (did the limiter fall back?)"
    finally:
        keys = list(store.scan_iter(f"{prefix}*"))
        if keys:
            store.delete(*keys)
        store.close()
