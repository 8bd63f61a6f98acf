"""The ``ipt`` console script, run for real in a subprocess against a database it migrates itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.core.config import _with_driver
from app.main import create_app
from tests.conftest import require_postgres
from tests.conftest import test_settings as make_settings
from tests.support.databases import postgres_database, sqlite_database

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "cli-test-secret-" + "k" * 32  # shared by the CLI and the in-process app: client secrets are keyed hashes
ADMIN_PASSWORD = "bootstrap-admin-password"
_SCRIPT = Path(sys.executable).parent / "ipt"
IPT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "app.cli"]


def ipt(database_url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``ipt ARGS`` with only the IPT_* settings given here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPT_")}
    env.update(
        IPT_ENV="test",
        IPT_DATABASE_URL=database_url,
        IPT_SECRET_KEY=SECRET_KEY,
        IPT_PASSWORD_HASH_MEMORY_KIB="1024",
        IPT_PASSWORD_HASH_TIME_COST="1",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run([*IPT, *args], env=env, cwd=cwd or ROOT, capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ipt: error:")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def _tables(database_url: str) -> set[str]:
    engine = sa.create_engine(_with_driver(database_url, "sqlite", "postgresql+psycopg"), poolclass=sa.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _count_organizations(database_url: str) -> int:
    engine = sa.create_engine(_with_driver(database_url, "sqlite", "postgresql+psycopg"), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT count(*) FROM organization"))
    finally:
        engine.dispose()


def _bootstrap(database_url: str, email: str) -> subprocess.CompletedProcess[str]:
    return ipt(database_url, "bootstrap", "--org", "Clinic", "--admin-email", email, "--admin-password", ADMIN_PASSWORD)


@dataclass(frozen=True)
class CliDatabase:
    """A database migrated by ``ipt db upgrade``, then bootstrapped by ``ipt bootstrap``."""

    url: str
    admin_email: str
    bootstrap: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def cli_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliDatabase]:
    """One fresh database per backend; each CLI call costs a second of imports, so the tests share it."""
    if request.param == "postgres":
        require_postgres()
        maker = postgres_database()
    else:
        maker = sqlite_database(tmp_path_factory.mktemp("cli"))
    with maker as url:
        upgrade = ipt(url, "db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
        yield CliDatabase(url, email, _bootstrap(url, email))


async def _token(database_url: str, form: dict[str, str]) -> tuple[httpx.Response, dict | None]:
    """A token request, then /v1/me with the token, against an in-process app on the same database."""
    application = create_app(make_settings(database_url, secret_key=SECRET_KEY))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver") as http:
            response = await http.post("/v1/auth/token", data=form)
            if response.status_code != 200:
                return response, None
            me = await http.get("/v1/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"})
            return response, me.json()
    finally:
        await application.state.engine.dispose()


def test_db_upgrade_builds_the_schema(cli_database):
    assert {"organization", "app_user", "integration", "refresh_token"} <= _tables(cli_database.url)


async def test_bootstrap_prints_organization_and_admin_ids_and_the_admin_can_log_in(cli_database):
    result = cli_database.bootstrap
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"organization_id", "admin_user_id"}

    form = {"grant_type": "password", "username": cli_database.admin_email, "password": ADMIN_PASSWORD}
    response, me = await _token(cli_database.url, form)
    assert response.status_code == 200, response.text
    assert me == {"type": "user", "id": created["admin_user_id"], "organization_id": created["organization_id"],
                  "roles": ["admin"], "scopes": ["audit:read", "org:admin", "webhooks:manage"]}


def test_second_bootstrap_with_the_same_email_exits_1_with_one_line_and_creates_nothing(cli_database):
    organizations = _count_organizations(cli_database.url)
    again = _bootstrap(cli_database.url, cli_database.admin_email.upper())
    assert_one_line_error(again, "already exists")
    assert again.stdout == ""
    assert _count_organizations(cli_database.url) == organizations  # no organization left without an admin


async def test_integration_create_prints_credentials_that_work_against_the_app(cli_database):
    org_id = json.loads(cli_database.bootstrap.stdout)["organization_id"]
    result = ipt(cli_database.url, "integration", "create", "--org", org_id, "--name", "EHR",
                 "--scopes", "clinical:read clinical:write")
    assert result.returncode == 0, result.stderr
    credentials = json.loads(result.stdout)
    assert credentials["client_id"] and credentials["client_secret"]
    assert credentials["scopes"] == ["clinical:read", "clinical:write"]

    form = {"grant_type": "client_credentials", "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"]}
    response, me = await _token(cli_database.url, form)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "clinical:read clinical:write"
    assert me == {"type": "integration", "id": credentials["id"], "organization_id": org_id, "roles": [],
                  "scopes": ["clinical:read", "clinical:write"]}


def test_integration_create_for_an_unknown_organization_exits_1_with_one_line(cli_database):
    missing = str(uuid.uuid4())
    result = ipt(cli_database.url, "integration", "create", "--org", missing, "--name", "EHR", "--scopes", "clinical:read")
    assert_one_line_error(result, missing)
    assert result.stdout == ""


def test_db_downgrade_to_base_then_upgrade_rebuilds_the_schema(cli_database):
    # Runs last on its database: the data goes with the downgrade.
    down = ipt(cli_database.url, "db", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert _tables(cli_database.url) == set()
    up = ipt(cli_database.url, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert {"organization", "app_user", "integration", "refresh_token"} <= _tables(cli_database.url)


def test_openapi_writes_the_contract_as_valid_json(tmp_path):
    out = tmp_path / "nested" / "openapi.json"
    result = ipt(f"sqlite:///{tmp_path / 'unused.db'}", "openapi", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["openapi"].startswith("3.")
    assert "/v1/auth/token" in document["paths"] and "/v1/users" in document["paths"]
