"""Record the SQL a block of code sends, as the database sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import event

from app.core.db import lease_of
from app.core.driver import asyncpg_adapter


@asynccontextmanager
async def recording(app: FastAPI) -> AsyncIterator[list[str]]:
    """The text of every statement sent while the block runs: on PostgreSQL every query asyncpg runs
    (SQLAlchemy's, the compiled ones app.core.fastsql runs on the driver, BEGIN and COMMIT alike),
    on the connections the engine holds between requests and on any it checks out,
    on SQLite every one SQLAlchemy runs."""
    sent: list[str] = []
    engine = app.state.engine.sync_engine
    if engine.dialect.name != "postgresql":

        def before(_conn, _cursor, statement, *_args):
            sent.append(statement)

        event.listen(engine, "before_cursor_execute", before)
        try:
            yield sent
        finally:
            event.remove(engine, "before_cursor_execute", before)
        return

    def log(query):
        sent.append(query.query)

    watched = []

    def watch(dbapi_connection, _record, _proxy):
        driver = dbapi_connection._connection
        driver.add_query_logger(log)
        watched.append(driver)

    event.listen(engine.pool, "checkout", watch)
    for conn, _ in lease_of(app.state.engine).idle:  # held between requests: never checked out again
        watch(asyncpg_adapter(conn), None, None)
    try:
        yield sent
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after each query, not at once
    finally:
        event.remove(engine.pool, "checkout", watch)
        for driver in watched:
            driver.remove_query_logger(log)
