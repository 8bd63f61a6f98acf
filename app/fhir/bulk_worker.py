"""The Bulk Data export worker: leases a job, writes its parts one transaction at a time, finishes it.

It runs in every server process with background tasks (as the webhook worker does) and in
``ipt worker``. Jobs, positions and files live in the database, so any worker on any host can take
over a job whose worker died: the lease runs out and the next worker resumes where the last part
committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from isal import isal_zlib
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import transaction
from app.exports import repository as jobs
from app.fhir import bulk

log = logging.getLogger("ipt.bulk")
GZIP_LEVEL = 1  # ISA-L's level 1: 2 GB/s, and FHIR NDJSON shrinks about 20 times


def gzip(pieces: list[bytes]) -> bytes:
    """A file's NDJSON pieces as one gzip member: stored so, and sent so to clients that accept gzip."""
    compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
    return b"".join([*map(compressor.compress, pieces), compressor.flush()])


PURGE_EVERY_SECONDS = 60.0


class BulkWorker:
    """One process's export worker."""

    def __init__(self, engine: AsyncEngine, settings: Settings, wake: asyncio.Event | None = None) -> None:
        self.engine = engine
        self.wake = wake or asyncio.Event()  # set by this process's kick-offs, so a new job starts at once
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batch = settings.bulk_export_batch
        self.lease = timedelta(seconds=settings.bulk_export_lease_seconds)
        self.keep_for = timedelta(hours=settings.bulk_export_retention_hours)
        self._purged_at = 0.0

    async def loop(self, idle_seconds: float = 1.0) -> None:
        """Work jobs until cancelled; look for one every ``idle_seconds`` when there is none."""
        while True:
            try:
                worked = await self.run_one()
                if time.monotonic() - self._purged_at > PURGE_EVERY_SECONDS:
                    async with transaction(self.engine, write=True) as db:
                        await jobs.purge_expired(db)
                    self._purged_at = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again shortly
                log.warning("bulk export worker: %s", type(exc).__name__)
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(self.wake.wait(), idle_seconds)
                    self.wake.clear()
                    await asyncio.sleep(0.05)  # the kick-off's transaction commits just after it wakes us
                except TimeoutError:
                    pass

    async def run_one(self) -> bool:
        """Lease one job and work it to its end (or until it is cancelled or taken over); False if none waits."""
        async with transaction(self.engine, write=True) as db:
            job = await jobs.claim(db, self.owner, self.lease)
        if job is None:
            return False
        try:
            await self._work(job)
        except Exception as exc:  # noqa: BLE001 - a job that cannot be rendered fails; it does not wedge the worker
            log.error("bulk export %s failed: %s", job["id"], type(exc).__name__)
            async with transaction(self.engine, write=True) as db:
                if await jobs.hold(db, job["id"], self.owner, self.lease):
                    await jobs.finish(db, job["id"], self.keep_for, error=f"The export failed ({type(exc).__name__}).")
        return True

    async def _work(self, job: dict) -> None:
        """Write the job's parts through a pipeline in which reading, rendering, compressing and storing overlap.

        A reader task reads the next batches (each in a read transaction of its own) while PostgreSQL
        works and this process renders; compression runs in a thread (ISA-L lets go of the GIL), so
        it overlaps the next batch's rendering. Each part is stored with the position after it in one
        transaction that first renews the lease, so whatever stops this worker, the job resumes after
        the last part stored.
        """
        read: asyncio.Queue = asyncio.Queue(maxsize=2)
        rendered: asyncio.Queue = asyncio.Queue(maxsize=1)  # each holds a part in full, before compression
        stages = [asyncio.create_task(self._read(job, read)), asyncio.create_task(_render(job, read, rendered))]
        written = job["written"]
        try:
            while True:
                item = await rendered.get()
                if isinstance(item, BaseException):
                    raise item
                batch, compressing = item
                files = await compressing
                async with transaction(self.engine, write=True) as db:
                    if db.dialect.name == "postgresql":
                        # A part and the position after it commit together, so a part lost in a crash is
                        # lost with its position and written again: its commit need not wait for the disk.
                        await db.execute(sa.text("SET LOCAL synchronous_commit = off"))
                    if not await jobs.hold(db, job["id"], self.owner, self.lease):
                        return  # cancelled, or another worker took it over after our lease ran out
                    for resource_type, (count, content) in files.items():
                        await jobs.add_file(db, job["id"], resource_type, count, content)
                    written += sum(count for count, _ in files.values())
                    await jobs.advance(db, job["id"], batch.position, written)
                    if batch.done:
                        await jobs.finish(db, job["id"], self.keep_for)
                if batch.done:
                    return
        finally:
            for stage in stages:
                stage.cancel()
            await asyncio.gather(*stages, return_exceptions=True)

    async def _read(self, job: dict, read: asyncio.Queue) -> None:
        """Read the job's batches in order onto ``read`` (an error goes there too)."""
        position, statements = job["position"], {}
        try:
            while True:
                async with transaction(self.engine, write=False) as db:
                    batch = await bulk.next_batch(db, {**job, "position": position}, self.batch, statements)
                await read.put(batch)
                if batch.done:
                    return
                position = batch.position
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed on to the writer, which fails the job
            await read.put(exc)


async def _render(job: dict, read: asyncio.Queue, rendered: asyncio.Queue) -> None:
    """Render each batch from ``read`` and start compressing it in a thread; hand both on in order."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            batch = await read.get()
            if isinstance(batch, BaseException):
                raise batch
            files = bulk.render(batch, job)
            await rendered.put((batch, loop.run_in_executor(None, _compressed, files)))
            if batch.done:
                return
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - handed on to the writer, which fails the job
        await rendered.put(exc)


def _compressed(files: bulk.Files) -> dict[str, tuple[int, bytes]]:
    return {resource_type: (count, gzip(pieces)) for resource_type, (count, pieces) in files.items()}
