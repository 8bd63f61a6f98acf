"""The rules package is pure (stdlib only, no app layers, no clock) and its catalogue is sane."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import app.rules
from app.rules import PROTOCOLS, Protocol

RULES_DIR = Path(app.rules.__file__).parent
ROOT = RULES_DIR.parent.parent
MODULES = ["app.rules"] + [f"app.rules.{m.name}" for m in pkgutil.iter_modules([str(RULES_DIR)])]
FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "sqlmodel", "pydantic")

PROBE = """
import json, sys
before = set(sys.modules)
for name in {modules!r}:
    __import__(name)
print(json.dumps({{"all": sorted(sys.modules), "new": sorted(set(sys.modules) - before)}}))
"""


def _is_allowed(name: str) -> bool:
    top = name.split(".")[0]
    return top in sys.stdlib_module_names or name in ("app", "__main__") or (
        name == "app.rules" or name.startswith("app.rules.")
    )


def test_importing_every_rules_module_loads_only_stdlib_and_app_rules():
    probe = PROBE.format(modules=MODULES)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    assert len(MODULES) >= 8
    assert [n for n in loaded["new"] if not _is_allowed(n)] == []
    assert [n for n in loaded["all"] if n.split(".")[0] in FORBIDDEN] == []
    assert [n for n in loaded["all"] if n.startswith("app.") and not _is_allowed(n)] == []


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.py")), ids=lambda p: p.name)
def test_rules_source_never_reads_the_clock(path):
    tree = ast.parse(path.read_text())
    clock_calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("today", "now", "utcnow")
    ]
    clock_imports = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any(alias.name in ("time", "today", "now") for alias in node.names)
    ]
    source = path.read_text()
    assert clock_calls == [] and clock_imports == []
    assert "date.today" not in source and "datetime.now" not in source


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.py")), ids=lambda p: p.name)
def test_rules_source_imports_only_stdlib_and_app_rules(path):
    tree = ast.parse(path.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module]
    assert [name for name in imported if not _is_allowed(name)] == []


# domain.md: planned range (default), initial at most, termination at least, extension at most.
CATALOGUE = {
    "ipt": (12, 16, 16, 4, 2, 4),
    "ipt-a": (12, 16, 12, 4, 2, 4),
    "ipt-b": (8, 9, 8, 2, 1, 2),
    "ipc": (3, 6, 6, 1, 1, 2),
    "ipt-m": (6, 36, 12, 2, 1, 12),
}


def test_protocol_catalogue_matches_domain_table():
    assert {
        p.id: (p.planned_min, p.planned_max, p.default_planned, p.initial_max,
               p.termination_min, p.extension_max)
        for p in PROTOCOLS.values()
    } == CATALOGUE


@pytest.mark.parametrize("spec", PROTOCOLS.values(), ids=lambda p: p.id)
def test_every_protocol_leaves_room_for_a_middle_phase(spec: Protocol):
    assert spec.planned_min <= spec.default_planned <= spec.planned_max
    assert spec.initial_max + spec.termination_min < spec.planned_min


def test_protocol_as_dict_is_json_ready():
    data = PROTOCOLS["ipt-b"].as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["id"] == "ipt-b" and data["initial_max"] == 2
