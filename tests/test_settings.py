"""Settings: unsafe secrets stop the start, development keys persist, and only config reads the environment."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "app"
_SCRIPT = Path(sys.executable).parent / "ipt"
IPT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "app.cli"]
UNSAFE_KEYS = {"missing": None, "placeholder": "changeme", "31_bytes": "k" * 31, "32_spaces": " " * 32}
GOOD_KEY = "0123456789abcdef0123456789abcdef"  # 32 bytes


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No IPT_* variable from the outer environment, and a scratch working directory."""
    for name in list(os.environ):
        if name.startswith("IPT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.mark.parametrize("case", ["missing", "placeholder", "31_bytes"])
def test_ipt_serve_in_production_with_an_unsafe_secret_key_exits_1_with_one_line(case, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
    env.update(IPT_ENV="production", IPT_DATABASE_URL=f"sqlite:///{tmp_path / 'ipt.db'}", PYTHONPATH=str(ROOT))
    if UNSAFE_KEYS[case] is not None:
        env["IPT_SECRET_KEY"] = UNSAFE_KEYS[case]
    # --port 0: should the check ever fail, the server starts on a free port and the timeout fails the test.
    result = subprocess.run(
        [*IPT, "serve", "--port", "0"], check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "IPT_SECRET_KEY" in lines[0] and "32 bytes" in lines[0]


@pytest.mark.parametrize("case", sorted(UNSAFE_KEYS))
def test_production_settings_refuse_an_unsafe_secret_key(case, clean_env):
    kwargs = {} if UNSAFE_KEYS[case] is None else {"secret_key": UNSAFE_KEYS[case]}
    with pytest.raises(ConfigError, match="IPT_SECRET_KEY"):
        Settings(env="production", **kwargs)


@pytest.mark.parametrize("case", sorted(UNSAFE_KEYS))
def test_production_settings_from_the_environment_refuse_an_unsafe_secret_key(case, clean_env):
    clean_env.setenv("IPT_ENV", "production")
    if UNSAFE_KEYS[case] is not None:
        clean_env.setenv("IPT_SECRET_KEY", UNSAFE_KEYS[case])
    with pytest.raises(ConfigError, match="IPT_SECRET_KEY"):
        Settings()


def test_production_settings_accept_a_32_byte_secret_key(clean_env):
    clean_env.setenv("IPT_ENV", "production")
    clean_env.setenv("IPT_SECRET_KEY", GOOD_KEY)
    settings = Settings()
    assert settings.env == "production" and settings.secret_key == GOOD_KEY
    assert not Path(".ipt-secret-key").exists()  # production never writes a key file


def test_development_key_is_generated_once_into_the_working_directory_and_reused(clean_env, tmp_path):
    first = Settings()  # development is the default
    assert first.env == "development"
    key_file = tmp_path / ".ipt-secret-key"
    assert key_file.read_text().strip() == first.secret_key
    assert len(first.secret_key.encode()) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # only the developer can read it

    assert Settings().secret_key == first.secret_key  # reused: tokens survive a restart


def test_development_keys_differ_between_working_directories(clean_env, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clean_env.chdir(tmp_path / "a")
    first = Settings(env="development").secret_key
    clean_env.chdir(tmp_path / "b")
    assert Settings(env="development").secret_key != first


def test_an_empty_development_key_file_is_replaced_by_a_random_key(clean_env, tmp_path):
    (tmp_path / ".ipt-secret-key").write_text("\n")
    key = Settings(env="development").secret_key
    assert len(key.encode()) >= 32  # never sign tokens with an empty key
    assert Settings(env="development").secret_key == key


def test_an_explicit_development_key_writes_no_file(clean_env, tmp_path):
    assert Settings(env="development", secret_key="my-own-dev-key").secret_key == "my-own-dev-key"
    assert not (tmp_path / ".ipt-secret-key").exists()


def test_test_settings_get_a_random_key_and_write_no_file(clean_env, tmp_path):
    first, second = Settings(env="test").secret_key, Settings(env="test").secret_key
    assert first != second and len(first.encode()) >= 32
    assert not (tmp_path / ".ipt-secret-key").exists()


_ENV_READERS = {"environ", "environb", "getenv", "getenvb"}


def _reads_environment(source: str) -> bool:
    tree = ast.parse(source)
    os_names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in _ENV_READERS for a in node.names):
            return True
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _ENV_READERS
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            return True
    return False


def test_the_environment_scan_recognises_every_way_of_reading_it():
    for source in ("import os\nos.environ['X']", "import os\nos.getenv('X')", "from os import environ",
                   "from os import getenv as g", "import os as o\no.environ.get('X')"):
        assert _reads_environment(source), source
    assert not _reads_environment("import os\nos.urandom(8)")


def test_only_core_config_reads_the_environment():
    config = APP_DIR / "core" / "config.py"
    offenders = sorted(
        str(path.relative_to(ROOT)) for path in APP_DIR.rglob("*.py") if path != config and _reads_environment(path.read_text())
    )
    assert offenders == []
