"""The ``ipt`` command: serve, worker, migrate, openapi, demo; the rest next to its package (audit, identity, research ``cli``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from app.audit import cli as audit_cli
from app.core.cli import CliError, database
from app.core.config import ConfigError, get_settings
from app.identity import cli as identity_cli
from app.research import cli as research_cli


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
    """Run the audit sealer, the webhook worker and the Bulk Data export worker (each unless turned off) until interrupted."""
    from app.background import housekeeping_loop
    from app.core.memory import keep_freed_memory
    from app.core.security import SecretBox
    from app.fhir.bulk_worker import BulkWorker
    from app.webhooks.worker import Worker

    settings = get_settings()
    keep_freed_memory()
    async with database() as engine:
        loops = [housekeeping_loop(engine, settings.audit_seal_interval_seconds)]
        if settings.webhook_worker:
            loops.append(Worker(engine, SecretBox(settings.secret_key), settings.webhook_allow_private).loop())
        if settings.bulk_export_worker:
            loops.append(BulkWorker(engine, settings).loop())
        await asyncio.gather(*loops)


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
    identity_cli.add_commands(sub)
    p = sub.add_parser("openapi", help="write openapi/openapi.json")
    p.add_argument("--out", type=Path, default=Path("openapi/openapi.json"))
    sub.add_parser("demo", help="create the demo organization if there is none, and print its log-ins")
    sub.add_parser("worker", help="deliver webhooks and seal the audit log, without serving the API")
    research_cli.add_commands(sub)
    audit_cli.add_commands(sub)
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "serve":
        serve(args.host, args.port, args.workers)
    elif args.command == "db" and args.db_command == "upgrade":
        db_upgrade()
    elif args.command == "db":
        db_downgrade(args.revision)
    elif args.command in ("bootstrap", "integration"):
        identity_cli.run(args)
    elif args.command == "openapi":
        print(write_openapi(args.out))
    elif args.command == "export":
        research_cli.run(args)
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
