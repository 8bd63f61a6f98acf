"""The ``ipt`` command: serve, migrate, bootstrap an organization, manage integrations."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from app.core.config import ConfigError, get_settings


class CliError(Exception):
    """A failure to report as one line on stderr with exit code 1."""


def _alembic_config() -> Any:
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    return config


def db_upgrade(revision: str = "head") -> None:
    """Migrate the configured database up to ``revision``."""
    from alembic import command

    command.upgrade(_alembic_config(), revision)


def db_downgrade(revision: str) -> None:
    """Migrate the configured database down to ``revision``."""
    from alembic import command

    command.downgrade(_alembic_config(), revision)


async def _with_db(work: Callable[[Any, Any], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work(db, secrets)`` in one committed transaction on the configured database."""
    from app.core.db import make_engine, transaction
    from app.core.security import Secrets

    settings = get_settings()
    engine = make_engine(settings)
    try:
        async with transaction(engine, write=True) as db:
            return await work(db, Secrets(settings))
    finally:
        await engine.dispose()


def bootstrap(org: str, email: str, password: str) -> dict[str, str]:
    """Create an organization and its first admin."""
    from app.core.errors import Conflict
    from app.identity import repository

    if len(password) < 10:
        raise CliError("the admin password must have at least 10 characters")

    async def work(db: Any, secrets: Any) -> dict[str, str]:
        organization = await repository.create_organization(db, org)
        user = await repository.create_user(
            db,
            organization["id"],
            {"email": email.lower(), "display_name": "Administrator", "roles": ["admin"],
             "password_hash": secrets.hash_password(password)},
        )
        return {"organization_id": organization["id"], "admin_user_id": user["id"]}

    try:
        return asyncio.run(_with_db(work))
    except Conflict:
        raise CliError(f"a user with the email {email} already exists") from None


def create_integration(org_id: str, name: str, scopes: str) -> dict[str, Any]:
    """Register an integration and return its credentials (the secret is shown only now)."""
    from app.identity import repository
    from app.identity.roles import SCOPES

    wanted = sorted(set(scopes.split()))
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise CliError(f"unknown or missing scopes: {' '.join(unknown) or '(none)'}; choose from {' '.join(SCOPES)}")

    async def work(db: Any, secrets: Any) -> dict[str, Any]:
        await repository.get_organization(db, org_id)
        client_secret = secrets.new_secret()
        values = {"name": name, "scopes": wanted, "client_id": "ipt_" + secrets.new_secret()[:24],
                  "secret_hash": secrets.hash_secret(client_secret)}
        row = await repository.create_integration(db, org_id, values)
        return {"id": row["id"], "client_id": row["client_id"], "client_secret": client_secret, "scopes": wanted}

    from app.core.errors import NotFound

    try:
        return asyncio.run(_with_db(work))
    except NotFound:
        raise CliError(f"no organization with id {org_id}") from None


def write_openapi(path: Path) -> Path:
    """Write the app's OpenAPI document (sorted, stable) to ``path``."""
    from app.main import create_app

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n")
    return path


def _log_config(level: str) -> dict[str, Any]:
    """Uvicorn's logging plus the app's own loggers (``ipt.*``: the JSON access log, errors) on stdout.

    Given to uvicorn rather than set up here, so that every worker process configures it too.
    """
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["ipt"] = {"format": "%(message)s"}
    config["handlers"]["ipt"] = {"class": "logging.StreamHandler", "formatter": "ipt", "stream": "ext://sys.stdout"}
    config["loggers"]["ipt"] = {"handlers": ["ipt"], "level": level.upper(), "propagate": False}
    return config


def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with uvicorn (uvloop and httptools when installed)."""
    import uvicorn

    settings = get_settings()  # refuse to start on bad settings before forking workers
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=False, proxy_headers=False, server_header=False, log_config=_log_config(settings.log_level))


async def _verify(db: Any, org: str | None) -> list[tuple[str, str]]:
    from app.audit import repository

    return await repository.verify(db, org)


async def _worker() -> None:
    """Run the webhook worker and the audit sealer until interrupted."""
    from app.background import housekeeping_loop
    from app.core.db import make_engine
    from app.webhooks.worker import Worker

    settings = get_settings()
    engine = make_engine(settings)
    worker = Worker(engine, settings.webhook_allow_private)
    try:
        await asyncio.gather(worker.loop(), housekeeping_loop(engine))
    finally:
        await engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipt", description="The IPT API service.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    db = sub.add_parser("db", help="migrations").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate to the latest revision")
    down = db.add_parser("downgrade", help="migrate down to a revision (base for empty)")
    down.add_argument("revision")
    p = sub.add_parser("bootstrap", help="create an organization and its first admin")
    p.add_argument("--org", required=True)
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    integration = sub.add_parser("integration", help="machine clients").add_subparsers(dest="integration_command", required=True)
    p = integration.add_parser("create", help="register an integration and print its credentials")
    p.add_argument("--org", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--scopes", required=True, help='space-separated, e.g. "clinical:read clinical:write"')
    p = sub.add_parser("openapi", help="write openapi/openapi.json")
    p.add_argument("--out", type=Path, default=Path("openapi/openapi.json"))
    sub.add_parser("demo", help="create the demo organization if there is none, and print its log-ins")
    sub.add_parser("worker", help="deliver webhooks and seal the audit log, without serving the API")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="check the hash chains; exit 1 naming the first break")
    verify.add_argument("--org", default=None, help="one organization id (default: all)")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "serve":
        serve(args.host, args.port, args.workers)
    elif args.command == "db" and args.db_command == "upgrade":
        db_upgrade()
    elif args.command == "db":
        db_downgrade(args.revision)
    elif args.command == "bootstrap":
        print(json.dumps(bootstrap(args.org, args.admin_email, args.admin_password)))
    elif args.command == "integration":
        print(json.dumps(create_integration(args.org, args.name, args.scopes)))
    elif args.command == "openapi":
        print(write_openapi(args.out))
    elif args.command == "worker":
        asyncio.run(_worker())
    elif args.command == "audit":
        problems = asyncio.run(_with_db(lambda db, _: _verify(db, args.org)))
        if problems:
            for org, problem in problems:
                print(f"organization {org}: {problem}", file=sys.stderr)
            raise CliError("the audit log has been tampered with")
        print("audit log intact" + (f" for organization {args.org}" if args.org else " for every organization"))
    elif args.command == "demo":
        from app.demo import ensure_demo

        print(ensure_demo())


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors are one line on stderr and exit code 1, never a traceback."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (CliError, ConfigError) as exc:
        print(f"ipt: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the promise is one clear line, never a traceback
        print(f"ipt: error: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "unexpected failure"


if __name__ == "__main__":
    sys.exit(main())
