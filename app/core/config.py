"""Settings: the only place that reads the environment (prefix ``IPT_``)."""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_KEYS = {"", "changeme", "change-me", "changethis", "secret", "please-change-me"}
DEV_KEY_FILE = Path(".ipt-secret-key")


class ConfigError(RuntimeError):
    """A setting makes it unsafe or impossible to start."""


class Settings(BaseSettings):
    """Every ``IPT_*`` setting, with the defaults a developer wants."""

    model_config = SettingsConfigDict(env_prefix="IPT_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./ipt.db"
    database_direct_url: str | None = None  # what needs a session of its own: LISTEN, migrations
    database_pooler: Literal["none", "pgbouncer"] = "none"
    db_pool_size: int = 10
    db_pool_timeout_seconds: float = 5.0
    secret_key: str = ""
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "ipt-api"
    jwt_audience: str = "ipt-api"
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(14, ge=1, le=365)
    password_hash_memory_kib: int = Field(65536, ge=8)
    password_hash_time_cost: int = Field(3, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = []  # comma-separated, not JSON
    max_body_bytes: int = 1024 * 1024
    rate_limit_per_minute: int = 600
    # Sign-in failures (app.identity.throttle). NIST SP 800-63B 5.2.2 asks verifiers to limit failed
    # attempts on an account and to prefer throttling to lockouts, which let anyone lock a person out;
    # OWASP counts failures per account, not per address, so many addresses cannot share out the guesses.
    # Ten per account in 15 minutes is 40 guesses an hour, and a clinician who mistyped ten times waits at
    # most 15 minutes; thirty per address stops a spray early yet leaves a clinic's NAT room for typos.
    login_failures_per_account: int = Field(10, ge=0)
    login_failures_per_address: int = Field(30, ge=0)
    login_failure_window_seconds: int = Field(900, ge=1, le=24 * 3600)
    login_rate_limit_per_minute: int | None = None  # replaced by the three above; only read to warn
    redis_url: str | None = None
    redis_key_prefix: str = "ipt:"
    redis_timeout_seconds: float = Field(1.0, gt=0, le=30)
    log_level: str = "INFO"
    background_tasks: bool = True
    audit_seal_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    webhook_worker: bool = True
    # FHIR Bulk Data $export (app.fhir.bulk_worker): rows per file part, a worker's lease on a job
    # (another worker resumes it after this long without word), and how long finished files are kept.
    bulk_export_worker: bool = True
    bulk_export_batch: int = Field(default=5_000, ge=1, le=100_000)
    bulk_export_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    bulk_export_retention_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    bulk_export_max_active: int = Field(default=5, ge=1, le=100)  # per requester; more is 429
    webhook_allow_private: bool = False
    # Reverse proxies whose forwarding headers are believed (app.core.proxy): addresses and CIDR networks.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    proxy_headers: Literal["x-forwarded", "forwarded"] = "x-forwarded"

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"IPT_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if self.jwt_algorithm != "HS256" and not (self.jwt_private_key_file and self.jwt_public_key_file):
            raise ConfigError(f"IPT_JWT_ALGORITHM={self.jwt_algorithm} needs IPT_JWT_PRIVATE_KEY_FILE and IPT_JWT_PUBLIC_KEY_FILE")
        if self.database_pooler != "none" and self.is_sqlite:
            raise ConfigError("IPT_DATABASE_POOLER is for PostgreSQL; SQLite has no pooler")
        if self.database_pooler != "none" and not self.database_direct_url:
            raise ConfigError("IPT_DATABASE_POOLER=pgbouncer needs IPT_DATABASE_DIRECT_URL, the server itself: "
                              "LISTEN (account changes) and migrations need a session of their own")
        if self.env == "production":
            if self.secret_key.strip().lower() in PLACEHOLDER_KEYS or len(self.secret_key.encode()) < 32:
                raise ConfigError("IPT_SECRET_KEY must be set to a random value of at least 32 bytes in production")
        elif not self.secret_key:
            self.secret_key = _development_key() if self.env == "development" else secrets.token_urlsafe(48)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def async_database_url(self) -> str:
        """The URL with the async driver the app uses (aiosqlite, asyncpg)."""
        return _with_driver(self.database_url, "sqlite+aiosqlite", "postgresql+asyncpg")

    @property
    def direct_url(self) -> str:
        """Where connections that need a session go (IPT_DATABASE_DIRECT_URL, else IPT_DATABASE_URL): never through a pooler."""
        return self.database_direct_url or self.database_url

    @property
    def sync_database_url(self) -> str:
        """The direct URL with the sync driver that migrations use."""
        return _with_driver(self.direct_url, "sqlite", "postgresql+psycopg")

    @property
    def libpq_url(self) -> str:
        """The direct PostgreSQL URL as psycopg takes it, for the LISTEN connection the app opens outside its pool."""
        return _with_driver(self.direct_url, "sqlite", "postgresql")


def _with_driver(url: str, sqlite_scheme: str, postgres_scheme: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("IPT_DATABASE_URL must look like sqlite:///path or postgresql://user@host/db")
    base = scheme.split("+")[0]
    if base == "sqlite":
        return f"{sqlite_scheme}://{rest}"
    if base in ("postgresql", "postgres"):
        return f"{postgres_scheme}://{rest}"
    raise ConfigError(f"unsupported database in IPT_DATABASE_URL: {base}")


def _development_key() -> str:
    """A random key generated once and kept in a git-ignored file, so tokens survive restarts."""
    if DEV_KEY_FILE.exists() and (kept := DEV_KEY_FILE.read_text().strip()):
        return kept
    key = secrets.token_urlsafe(48)  # an empty file must never mean an empty signing key
    DEV_KEY_FILE.write_text(key + "\n")
    DEV_KEY_FILE.chmod(0o600)
    return key


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

