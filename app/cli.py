"""The ``ipt`` command: serve, migrate, bootstrap, integrations, research export (``ipt audit``: app/audit/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from app.audit import cli as audit_cli
from app.core.cli import CliError, database, operator_name, with_db
from app.core.config import ConfigError, get_settings


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
        return asyncio.run(with_db(work))
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
        return asyncio.run(with_db(work))
    except NotFound:
        raise CliError(f"no organization with id {org_id}") from None


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn at most five times a second."""

    def __init__(self, total: int | None, stream: Any) -> None:
        import time

        self.total, self.stream, self._clock = total, stream, time.monotonic
        self.started = self._last = self._clock()

    def update(self, rows: int, final: bool = False) -> None:
        now = self._clock()
        if not final and now - self._last < 0.2:
            return
        self._last = now
        rate = rows / max(now - self.started, 1e-6)
        if self.total:
            done = min(rows / self.total, 1.0)
            bar = "#" * int(done * 30)
            text = f"[{bar:<30}] {done:4.0%} {rows:,}/{self.total:,} rows, {rate:,.0f} rows/s"
        else:
            text = f"{rows:,} rows, {rate:,.0f} rows/s"
        self.stream.write("\r" + text + ("\n" if final else ""))
        self.stream.flush()


def export(dataset: str, org_id: str, out: Path, fmt: str, profile: str, filters: dict[str, Any] | None = None,
           progress_stream: Any = None) -> dict[str, Any]:
    """Write a research export to ``out`` (the API's rows, made by the same generator) and audit it as an operator's."""
    from app.audit import writer as audit_writer
    from app.core.db import transaction
    from app.core.errors import NotFound
    from app.research import service

    stream = progress_stream if progress_stream is not None else sys.stderr
    job = service.Export(dataset, profile, fmt, service.ExportFilters(**(filters or {})))
    operator = operator_name()

    async def run() -> dict[str, Any]:
        partial = out.with_name(out.name + ".part")
        progress = service.Progress()
        async with database() as engine:
            try:
                async with transaction(engine, write=True) as db:
                    key = await service.export_key(db, org_id, job)
            except NotFound:
                raise CliError(f"no organization with id {org_id}") from None
            except service.DataUseAgreementRequired:
                raise CliError("the limited profile needs the organization's data-use agreement "
                               "(PATCH /v1/organization {\"data_use_agreement\": true})") from None
            bar = _ProgressBar(await service.count(engine, org_id, job), stream) if stream.isatty() else None
            try:
                with partial.open("wb") as sink:  # renamed only when complete: a partial file never looks finished
                    async for chunk in service.chunks(engine, org_id, key, job, progress):
                        sink.write(chunk)
                        if bar:
                            bar.update(progress.rows)
                partial.replace(out)
                if bar:
                    bar.update(progress.rows, final=True)
            finally:
                partial.unlink(missing_ok=True)
                details = {**service.finished_details(job, progress), "via": "cli"}
                await service.record_event(engine, audit_writer.operator_event(
                    org_id, "export", f"research_{dataset}", details, operator))
        return {"rows": progress.rows, "out": str(out), "profile": profile, "format": fmt}

    return asyncio.run(run())


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


def _stopped_by_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with uvicorn (uvloop and httptools when installed); SIGTERM stops it gracefully, exit 0."""
    import signal

    import uvicorn

    settings = get_settings()  # refuse to start on bad settings before forking workers
    # uvicorn answers SIGTERM with a graceful stop (requests in flight are answered, the lifespan
    # shuts down) and then raises the signal again, so that the default action ends the process
    # with status -15: supervisors (systemd, Kubernetes, docker stop) would count a clean stop as a
    # crash. This handler is the one that second SIGTERM meets (and one before uvicorn starts).
    signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    # proxy_headers=False: uvicorn would believe X-Forwarded-For from 127.0.0.1 (its default
    # forwarded_allow_ips); only IPT_TRUSTED_PROXIES decides whose forwarding headers count (app.core.proxy).
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=False, proxy_headers=False, server_header=False, log_config=_log_config(settings.log_level))


async def _worker() -> None:
    """Run the webhook worker and the audit sealer until interrupted."""
    from app.background import housekeeping_loop
    from app.core.security import SecretBox
    from app.webhooks.worker import Worker

    settings = get_settings()
    async with database() as engine:
        worker = Worker(engine, SecretBox(settings.secret_key), settings.webhook_allow_private)
        await asyncio.gather(worker.loop(), housekeeping_loop(engine, settings.audit_seal_interval_seconds))


def _parser() -> argparse.ArgumentParser:
    from app.instruments import INSTRUMENTS  # pure data, quick to import
    from app.rules import PROTOCOLS

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
    p = sub.add_parser("export", help="write a de-identified research export to a file (audited)")
    p.add_argument("dataset", choices=["measures", "courses"])
    p.add_argument("--org", required=True, help="the organization id")
    p.add_argument("--out", required=True, type=Path, help="the file to write")
    p.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    p.add_argument("--profile", choices=["safe_harbor", "limited"], default="safe_harbor",
                   help="limited needs the organization's data-use agreement")
    p.add_argument("--instrument", default=None, choices=list(INSTRUMENTS))
    p.add_argument("--protocol", default=None, choices=list(PROTOCOLS))
    p.add_argument("--started-year-from", type=int, default=None)
    p.add_argument("--started-year-to", type=int, default=None)
    audit_cli.add_commands(sub)
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
    elif args.command == "export":
        filters = {"instrument": args.instrument, "protocol": args.protocol,
                   "started_year_from": args.started_year_from, "started_year_to": args.started_year_to}
        print(json.dumps(export(args.dataset, args.org, args.out, args.format, args.profile, filters)))
    elif args.command == "worker":
        asyncio.run(_worker())
    elif args.command == "audit":
        audit_cli.run(args)
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
