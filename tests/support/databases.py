"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get("IPT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("IPT_TEST_REQUIRE_POSTGRES") == "1"


def postgres_available() -> bool:
    """Whether the test PostgreSQL server answers."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped on exit."""
    name = f"ipt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # A throwaway database need not wait for the disk on every commit (tests of durability set it back).
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """A new SQLite file's URL."""
    yield f"sqlite:///{directory / f'ipt_{uuid.uuid4().hex[:8]}.db'}"


def alembic_config(database_url: str) -> Config:
    """An Alembic config aimed at one database (sync driver)."""
    from app.core.config import _with_driver

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = _with_driver(database_url, "sqlite", "postgresql+psycopg")
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Build the schema the only way the app allows: by running the migrations."""
    command.upgrade(alembic_config(database_url), revision)


def throwaway_database(kind: str, directory: Path):
    """A new ``postgres`` or ``sqlite`` database (a context manager yielding its URL), dropped on exit."""
    return postgres_database() if kind == "postgres" else sqlite_database(directory)
