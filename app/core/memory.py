"""glibc's allocator, told to keep the memory a process frees for its next use.

By default glibc hands freed memory back to the kernel as soon as 128 KB lie free at the top of the
heap, and serves every allocation from 128 KB up with a fresh mapping, so a process that builds
and drops megabytes at a time (a Bulk Data part: ten thousand resources of a kilobyte, joined into
files of 6 MB) takes a page fault for every 4 KB it writes, again and again: measured here, half
the cost of rendering a part. Kept, the same pages serve the next part. The memory a process holds
is then its peak (bounded: an export holds a few parts at once), not less.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("ipt.memory")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
KEEP_FREE_BYTES = 64 << 20  # free memory kept at the heap's top before any goes back to the kernel
MAP_FROM_BYTES = 32 << 20  # allocations from this size get a mapping of their own (glibc's own ceiling)


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for reuse (process-wide, once); False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl, macOS: their allocators keep no such thresholds
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = mallopt(M_TRIM_THRESHOLD, KEEP_FREE_BYTES) == 1 and mallopt(M_MMAP_THRESHOLD, MAP_FROM_BYTES) == 1
    if not kept:
        log.warning("malloc tuning refused: freed memory goes back to the kernel as glibc decides")
    return kept
