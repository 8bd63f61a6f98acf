"""Organizations, users, integrations and refresh tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, id_field, json_field, org_field, timestamp_field


class Organization(SQLModel, table=True):
    """A tenant: every other row belongs to exactly one."""

    __tablename__ = "organization"
    id: str = id_field()
    name: str = Field(max_length=200)
    data_use_agreement: bool = Field(default=False)
    # The secret behind the research export's pseudonyms (HMAC-SHA256 key). Never returned by any
    # route; rotating it (POST /v1/research/export-key/rotate) makes new pseudonyms. Null only for
    # rows written around the app (a seed); the first export then generates it.
    research_export_key: str | None = Field(default=None, max_length=64)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class AppUser(SQLModel, table=True):
    """A person who logs in with an email and password (``user`` is reserved in PostgreSQL)."""

    __tablename__ = "app_user"
    id: str = id_field()
    organization_id: str = org_field()
    email: str = Field(max_length=320, unique=True)
    display_name: str = Field(max_length=200)
    password_hash: str = Field(max_length=200)
    roles: list[str] = json_field()
    active: bool = Field(default=True)
    version: int = Field(default=1)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Integration(SQLModel, table=True):
    """A machine client (an EHR) with granted scopes and one way to authenticate.

    Either a client secret (``secret_hash``) or a public key set for signed client assertions
    (SMART Backend Services): ``jwks`` inline, or ``jwks_url`` fetched and cached.
    """

    __tablename__ = "integration"
    id: str = id_field()
    organization_id: str = org_field()
    name: str = Field(max_length=200)
    client_id: str = Field(max_length=64, unique=True)
    secret_hash: str | None = Field(default=None, max_length=128)
    jwks: dict | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    jwks_url: str | None = Field(default=None, max_length=2000)
    scopes: list[str] = json_field()
    deleted_at: datetime | None = timestamp_field()
    version: int = Field(default=1)
    created_at: datetime = created_at_field()


class RefreshToken(SQLModel, table=True):
    """One refresh token of a rotating family; only its hash is stored."""

    __tablename__ = "refresh_token"
    id: str = id_field()
    family_id: str = Field(max_length=36, index=True)
    user_id: str = Field(foreign_key="app_user.id", max_length=36, index=True)
    token_hash: str = Field(max_length=128)
    scope: str = Field(default="", max_length=200)  # granted at log-in; a refresh never widens it
    expires_at: datetime = timestamp_field(nullable=False)
    used_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()


class ClientAssertion(SQLModel, table=True):
    """An accepted client assertion's ``jti``, kept until the assertion expires so it works only once."""

    __tablename__ = "client_assertion"
    integration_id: str = Field(foreign_key="integration.id", primary_key=True, max_length=36)
    jti: str = Field(primary_key=True, max_length=255)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False, index=True)
