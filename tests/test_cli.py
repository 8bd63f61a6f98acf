"""The ``ipt`` console script, run for real in a subprocess against a database it migrates itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.core.config import _with_driver
from app.main import create_app
from tests.conftest import require_postgres
from tests.conftest import test_settings as make_settings
from tests.support.databases import postgres_database, sqlite_database
from tests.support.smart import Assertion as SignedAssertion
from tests.support.smart import ClientKey, jwks, token_form

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "cli-test-secret-" + "k" * 32  # shared by the CLI and the in-process app: client secrets are keyed hashes
ADMIN_PASSWORD = "bootstrap-admin-password"
MISSING_ORG = "00000000-0000-7000-8000-000000000000"
TABLES = {"organization", "app_user", "integration", "refresh_token"}
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
    return subprocess.run([*IPT, *args], check=False, env=env, cwd=cwd or ROOT, capture_output=True, text=True, timeout=60)


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


@dataclass
class CliRuns:
    """What the ``ipt`` calls printed, and the schema seen between them, for one backend."""

    url: str
    admin_email: str
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    tables: dict[str, set[str]] = field(default_factory=dict)
    organizations: dict[str, int] = field(default_factory=dict)
    client_key: ClientKey = field(default_factory=ClientKey.ec)


def _write_json(document: dict) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(document, out)
    return out.name


def _run_everything(runs: CliRuns) -> None:
    """Up, down to base, up again; then bootstrap, and the calls that need its organization side by side."""
    for step, args in (("upgrade", ("db", "upgrade")), ("downgrade", ("db", "downgrade", "base")),
                       ("upgrade_again", ("db", "upgrade"))):
        runs.runs[step] = ipt(runs.url, *args)
        runs.tables[step] = _tables(runs.url)
    runs.runs["bootstrap"] = _bootstrap(runs.url, runs.admin_email)
    org_id = json.loads(runs.runs["bootstrap"].stdout or "{}").get("organization_id", "none")
    runs.organizations["after_bootstrap"] = _count_organizations(runs.url)
    calls = {
        "bootstrap_again": ("bootstrap", "--org", "Clinic", "--admin-email", runs.admin_email.upper(),
                            "--admin-password", ADMIN_PASSWORD),
        "integration": ("integration", "create", "--org", org_id, "--name", "EHR", "--scopes", "clinical:read clinical:write"),
        "integration_unknown_org": ("integration", "create", "--org", MISSING_ORG, "--name", "EHR", "--scopes", "clinical:read"),
        "integration_jwks": ("integration", "create", "--org", org_id, "--name", "EHR bulk", "--scopes", "clinical:read",
                             "--jwks", _write_json(jwks(runs.client_key))),
        "integration_private_jwks": ("integration", "create", "--org", org_id, "--name", "EHR", "--scopes", "clinical:read",
                                     "--jwks", _write_json({"keys": [runs.client_key.key.as_dict(private=True) | {"kid": "k"}]})),
    }
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(ipt, runs.url, *args) for name, args in calls.items()}
    runs.runs.update({name: future.result() for name, future in futures.items()})
    runs.organizations["after_bootstrap_again"] = _count_organizations(runs.url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRuns]:
    """Every ``ipt`` call of this module, on one fresh database of one backend.

    Each call spends over a second importing the app, so the module makes each call once, runs the
    independent ones side by side, and the tests below assert on what they printed and left behind.
    """
    if request.param == "postgres":
        require_postgres()
        maker = postgres_database()
    else:
        maker = sqlite_database(tmp_path_factory.mktemp("cli"))
    with maker as url:
        runs = CliRuns(url, f"admin-{uuid.uuid4().hex[:8]}@example.test")
        _run_everything(runs)
        yield runs


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


def test_db_upgrade_builds_the_schema(cli):
    assert cli.runs["upgrade"].returncode == 0, cli.runs["upgrade"].stderr
    assert TABLES <= cli.tables["upgrade"]


async def test_bootstrap_prints_organization_and_admin_ids_and_the_admin_can_log_in(cli):
    result = cli.runs["bootstrap"]
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"organization_id", "admin_user_id"}

    form = {"grant_type": "password", "username": cli.admin_email, "password": ADMIN_PASSWORD}
    response, me = await _token(cli.url, form)
    assert response.status_code == 200, response.text
    assert me == {"type": "user", "id": created["admin_user_id"], "organization_id": created["organization_id"],
                  "roles": ["admin"], "scopes": ["audit:read", "org:admin", "webhooks:manage"]}


def test_second_bootstrap_with_the_same_email_exits_1_with_one_line_and_creates_nothing(cli):
    again = cli.runs["bootstrap_again"]
    assert_one_line_error(again, "already exists")
    assert again.stdout == ""
    # No organization was left behind without an admin.
    assert cli.organizations["after_bootstrap_again"] == cli.organizations["after_bootstrap"] == 1


async def test_integration_create_prints_credentials_that_work_against_the_app(cli):
    result = cli.runs["integration"]
    assert result.returncode == 0, result.stderr
    credentials = json.loads(result.stdout)
    assert credentials["client_id"] and credentials["client_secret"]
    assert credentials["scopes"] == ["clinical:read", "clinical:write"]

    form = {"grant_type": "client_credentials", "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"]}
    response, me = await _token(cli.url, form)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "clinical:read clinical:write"
    org_id = json.loads(cli.runs["bootstrap"].stdout)["organization_id"]
    assert me == {"type": "integration", "id": credentials["id"], "organization_id": org_id, "roles": [],
                  "scopes": ["clinical:read", "clinical:write"]}


async def test_integration_create_with_a_jwks_file_registers_keys_that_sign_for_a_token(cli):
    result = cli.runs["integration_jwks"]
    assert result.returncode == 0, result.stderr
    credentials = json.loads(result.stdout)
    assert credentials["client_secret"] is None and credentials["jwks"]["keys"][0]["kid"] == cli.client_key.kid
    assertion = SignedAssertion(credentials["client_id"], "http://testserver/v1/auth/token").signed(cli.client_key)
    response, me = await _token(cli.url, token_form(assertion, "system/*.rs"))
    assert response.status_code == 200, response.text
    assert me["id"] == credentials["id"] and me["scopes"] == ["clinical:read"]
    refused = cli.runs["integration_private_jwks"]
    assert_one_line_error(refused, "private")
    assert refused.stdout == ""


def test_integration_create_for_an_unknown_organization_exits_1_with_one_line(cli):
    result = cli.runs["integration_unknown_org"]
    assert_one_line_error(result, MISSING_ORG)
    assert result.stdout == ""


def test_db_downgrade_to_base_then_upgrade_rebuilds_the_schema(cli):
    for step in ("upgrade", "downgrade", "upgrade_again"):
        assert cli.runs[step].returncode == 0, (step, cli.runs[step].stderr)
    assert cli.tables["downgrade"] == set()
    assert cli.tables["upgrade_again"] == cli.tables["upgrade"]


def test_openapi_writes_the_contract_as_valid_json(tmp_path):
    out = tmp_path / "nested" / "openapi.json"
    result = ipt(f"sqlite:///{tmp_path / 'unused.db'}", "openapi", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["openapi"].startswith("3.")
    assert "/v1/auth/token" in document["paths"] and "/v1/users" in document["paths"]
