"""The ``ipt export`` command: a de-identified research export written to a file, audited as an operator's."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from app.core.cli import CliError, database, operator_name


def add_commands(sub: Any) -> None:
    """Add ``ipt export`` to the command's subparsers."""
    from app.instruments import INSTRUMENTS  # pure data, quick to import
    from app.rules import PROTOCOLS

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


def run(args: argparse.Namespace) -> None:
    """Run ``ipt export`` as ``args`` says and print what was written."""
    filters = {"instrument": args.instrument, "protocol": args.protocol,
               "started_year_from": args.started_year_from, "started_year_to": args.started_year_to}
    print(json.dumps(export(args.dataset, args.org, args.out, args.format, args.profile, filters)))


class ProgressBar:
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

    async def run_export() -> dict[str, Any]:
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
            bar = ProgressBar(await service.count(engine, org_id, job), stream) if stream.isatty() else None
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

    return asyncio.run(run_export())
