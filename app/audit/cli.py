"""The ``ipt audit`` commands: verify the hash chains (or an archive file), seal, archive whole months."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from app.core.cli import CliError, database, operator_name, with_db


def add_commands(sub: Any) -> None:
    """Add ``ipt audit verify|archive|seal`` to the command's subparsers."""
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="check the hash chains; exit 1 naming the first break")
    verify.add_argument("--org", default=None, help="one organization id (default: all)")
    verify.add_argument("--archive", type=Path, default=None, metavar="FILE",
                        help="check an archive file on its own (checksum and chains) instead of the database")
    p = audit.add_parser("archive", help="write whole months to a file, record where each chain ends, take them out (audited)")
    p.add_argument("--before", required=True, metavar="YYYY-MM",
                   help="archive every month before this one (at most the current one)")
    p.add_argument("--out", type=Path, default=None, help="the file to write (default audit-archive-before-YYYY-MM.ndjson)")
    audit.add_parser("seal", help="chain every event committed so far (after older writers end, 10 s at most); print how many")


def run(args: argparse.Namespace) -> None:
    """Run the ``ipt audit`` command ``args`` names; a failure is a CliError."""
    if args.audit_command == "seal":
        print(json.dumps({"sealed": asyncio.run(_seal())}))
    elif args.audit_command == "archive":
        print(json.dumps(archive_audit(args.before, args.out)))
    elif args.archive is not None:
        print(verify_archive_file(args.archive))
    else:
        _print_problems(asyncio.run(with_db(lambda db, _: _verify(db, args.org))), "the audit log has been tampered with")
        print("audit log intact" + (f" for organization {args.org}" if args.org else " for every organization"))


def _print_problems(problems: list[tuple[str, str]], summary: str) -> None:
    if problems:
        for org, problem in problems:
            print(f"organization {org}: {problem}", file=sys.stderr)
        raise CliError(summary)


async def _verify(db: Any, org: str | None) -> list[tuple[str, str]]:
    from app.audit import repository

    return await repository.verify(db, org)


def archive_audit(before: str, out: Path | None) -> dict[str, Any]:
    """Archive the audit log's whole months before ``before`` to a file and take them out (see app/audit/archive.py)."""
    from app.audit import archive

    async def archive_months() -> dict[str, Any]:
        async with database() as engine:
            return await archive.archive(engine, before, out or Path(f"audit-archive-before-{before}.ndjson"), operator_name())

    try:
        return asyncio.run(archive_months())
    except archive.ArchiveRefused as exc:
        raise CliError(f"nothing archived: {exc}") from None


def verify_archive_file(path: Path) -> str:
    """Check an archive file on its own; the line to print when it is intact."""
    from app.audit import archive

    if not path.is_file():
        raise CliError(f"no archive file {path}")
    header, problems = archive.verify_file(path)
    _print_problems(problems, f"the audit archive {path} does not verify")
    return (f"audit archive {path} intact: {header['events']} events of {len(header['organizations'])} organization(s), "
            f"months {', '.join(header['months'])}, sha256 {header['sha256']}")


async def _seal() -> int:
    """Seal everything committed so far, as the worker does every second (e.g. before `ipt audit verify`)."""
    from app.background import seal_everything_committed

    async with database() as engine:
        return await seal_everything_committed(engine)
