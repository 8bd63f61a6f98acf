"""app.core.memory: with glibc told to keep freed memory, building and dropping a Bulk Data part over and
over takes no new page faults; glibc's defaults take tens of thousands."""

from __future__ import annotations

import subprocess
import sys

from tests.support.live import ROOT

PARTS = """
import resource, sys
from app.core.memory import keep_freed_memory
if sys.argv[1] == "kept" and not keep_freed_memory():
    sys.exit("glibc refused the tuning")
def part():  # a part's shape: 5,000 lines of a kilobyte, joined and encoded
    return "\\n".join([("%05d," % n) * 200 for n in range(5000)]).encode()
part()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    part()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PARTS, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_kept_memory_serves_the_next_part_without_page_faults():
    kept, default = _page_faults("kept"), _page_faults("default")
    assert default > 10_000  # glibc gives each part fresh pages (4 KB each): megabytes of them every time
    assert kept < default / 20, (kept, default)
