"""Binaries tests need: real servers from Debian's packages (nginx, PgBouncer) and tools the project installs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_INFRA = os.environ.get("IPT_TEST_REQUIRE_INFRA") == "1"


def require_binary(name: str) -> str:
    """The path of ``name``; skip when it is not installed (fail in CI, IPT_TEST_REQUIRE_INFRA=1)."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if path is None:
        message = f"{name} is not installed (make infra installs it as root)"
        if REQUIRE_INFRA:
            pytest.fail(f"{message}, and IPT_TEST_REQUIRE_INFRA=1")
        pytest.skip(message)
    return path


# Tools the project installs itself (the test extra in .venv, package-lock.json in node_modules): under CI,
# which runs `make test` on a clean checkout, a missing one means an install step is broken, not optional.
REQUIRE_TOOLS = REQUIRE_INFRA or os.environ.get("CI", "").lower() in ("true", "1")


def require_tool(path: Path, hint: str) -> Path:
    """``path`` when it exists; skip when it does not (fail in CI, CI=true)."""
    if not path.exists():
        message = f"{path} is missing: {hint}"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}, and CI is set")
        pytest.skip(message)
    return path
