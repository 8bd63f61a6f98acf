"""app.instruments is pure: importing it loads only the standard library and itself."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
before = set(sys.modules)
import app.instruments
print(json.dumps({"before": sorted(before), "after": sorted(sys.modules)}))
"""


def _is_allowed(name: str) -> bool:
    top = name.partition(".")[0]
    return (
        top in sys.stdlib_module_names
        or top in sys.builtin_module_names
        or name in ("__main__", "app")
        or name == "app.instruments"
        or name.startswith("app.instruments.")
    )


def test_importing_app_instruments_loads_only_stdlib_and_app_instruments():
    # -S: no site-packages, so anything outside the standard library would fail to import.
    run = subprocess.run(
        [sys.executable, "-S", "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(run.stdout)
    new = set(loaded["after"]) - set(loaded["before"])
    assert "app.instruments.scoring" in new
    assert sorted(m for m in loaded["after"] if not _is_allowed(m)) == []
    assert sorted(m for m in new if m.startswith("app.") and not _is_allowed(m)) == []
