"""What every package's ``ipt`` commands share: the one-line error and the configured database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from app.core.config import get_settings


class CliError(Exception):
    """A failure to report as one line on stderr with exit code 1."""


@asynccontextmanager
async def database() -> AsyncIterator[Any]:
    """An engine on the configured database, disposed of on the way out."""
    from app.core.db import make_engine

    engine = make_engine(get_settings())
    try:
        yield engine
    finally:
        await engine.dispose()


async def with_db(work: Callable[[Any, Any], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work(db, secrets)`` in one committed transaction on the configured database."""
    from app.core.db import transaction
    from app.core.security import Secrets

    async with database() as engine, transaction(engine, write=True) as db:
        return await work(db, Secrets(get_settings()))


def operator_name() -> str | None:
    """The login name of whoever runs the command, for the audit event."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): the event still says "operator"
        return None
