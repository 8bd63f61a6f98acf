"""Identifiers and clocks: time-ordered UUIDs (v7) so ids sort in creation order."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id() -> str:
    """A UUIDv7 string: 48-bit millisecond time, then a per-process sequence and randomness."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms, _seq = _last_ms, _seq + 1
        else:
            _seq = 0
        if _seq > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
            ms, _seq = ms + 1, 0
        _last_ms = ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    h = f"{(ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand:032x}"  # uuid.UUID would cost 5x more
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> datetime:
    """The current time in UTC, to the microsecond."""
    return datetime.now(UTC)


def today() -> date:
    """Today's date in UTC: the service's one notion of 'today' for the rules."""
    return datetime.now(UTC).date()


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp in UTC: SQLite gives it back naive (UTC), PostgreSQL in the session's time zone."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def rfc3339(value: datetime | None) -> str | None:
    """A timestamp as RFC 3339 in UTC with a trailing Z (SQLite returns naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"
