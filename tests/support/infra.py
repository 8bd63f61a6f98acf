"""Real servers from Debian's packages (nginx, PgBouncer) that tests start themselves: find their binaries."""

from __future__ import annotations

import os
import shutil

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
