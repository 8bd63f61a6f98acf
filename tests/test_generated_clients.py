"""Clients generate whole from the committed contract: every operation, no warning, code that compiles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support.infra import require_tool

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "openapi" / "openapi.json"
USAGE = ROOT / "tests" / "clients" / "usage.ts"
SCRIPTS = Path(sysconfig.get_path("scripts"))  # the venv the suite runs in: the test extra's console scripts
NODE_BIN = ROOT / "node_modules" / ".bin"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
PACKAGE = "ipt_api_client"  # from the document's title, "IPT API"
# Strict, but not every rule: the point is that the generated types are usable under the settings teams use.
TSCONFIG = {
    "compilerOptions": {
        "strict": True, "noEmit": True, "noUnusedLocals": True, "noImplicitReturns": True,
        "exactOptionalPropertyTypes": True, "noUncheckedIndexedAccess": True,
        "target": "es2022", "module": "esnext", "moduleResolution": "bundler", "types": [],
    },
    "files": ["usage.ts", "api.d.ts"],
}


def _run(argv: list[str], cwd: Path) -> str:
    """Run a generator or compiler; its combined output, after asserting it exited 0."""
    # The venv's bin first: openapi-python-client's post-hooks run ruff by name and warn when it is not on PATH.
    env = {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    done = subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}:\n{output}"
    return output


def _operations() -> list[tuple[str, str]]:
    document = json.loads(CONTRACT.read_text())
    return [(op["tags"][0], op["operationId"]) for item in document["paths"].values()
            for method, op in item.items() if method in METHODS]


def test_the_python_client_generates_every_operation_without_a_warning(tmp_path):
    generator = require_tool(SCRIPTS / "openapi-python-client", "`make install` installs the test extra")
    out = tmp_path / "python"
    output = _run([str(generator), "generate", "--path", str(CONTRACT), "--output-path", str(out),
                   "--fail-on-warning"], tmp_path)
    # Anything past the one progress line is a warning or an error (a skipped response, a failed hook, ...).
    assert output.strip().splitlines() == [f"Generating {out}"], f"openapi-python-client said more:\n{output}"
    api = out / PACKAGE / "api"
    expected = {api / tag / f"{op_id.replace('-', '_')}.py" for tag, op_id in _operations()}
    missing = sorted(str(p.relative_to(api)) for p in expected if not p.exists())
    assert len(expected) > 50 and not missing, f"operations missing from the client: {missing}"
    for module in ("measures/measures_get_outcome_chart.py", "fhir/fhir_episode_of_care_everything.py",
                   "auth/auth_issue_token.py"):
        assert (api / module).exists(), module
    chart = (api / "measures" / "measures_get_outcome_chart.py").read_text()
    assert "-> File | Problem | None" in chart, "the chart's 200 body is not read as a file"
    # Import every module (it compiles, and its imports resolve against the suite's httpx and attrs).
    walk = (f"import importlib, pkgutil, {PACKAGE} as p\n"
            f"for m in pkgutil.walk_packages(p.__path__, '{PACKAGE}.'): importlib.import_module(m.name)\n")
    assert _run([sys.executable, "-W", "error", "-c", walk], out) == ""


def test_the_typescript_types_generate_without_a_warning_and_type_check_strictly(tmp_path):
    generator = require_tool(NODE_BIN / "openapi-typescript", "`make test` runs npm ci")
    tsc = require_tool(NODE_BIN / "tsc", "`make test` runs npm ci")
    output = _run([str(generator), str(CONTRACT), "--output", str(tmp_path / "api.d.ts")], tmp_path)
    lines = output.strip().splitlines()
    # Its banner and one line per document written; a warning or a lint finding is any other line.
    assert len(lines) == 2 and "openapi-typescript" in lines[0] and "api.d.ts" in lines[1], output
    shutil.copy(USAGE, tmp_path / "usage.ts")
    (tmp_path / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    assert _run([str(tsc), "-p", str(tmp_path), "--pretty", "false"], tmp_path).strip() == ""

