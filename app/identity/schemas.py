"""Identity request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.core.schemas import StrictInput, StrictPatch
from app.identity.roles import Role, Scope

# \u0085 spelled out: JSON Schema (ECMA) regexes do not count it as \s, the server's regex does.
EMAIL_PATTERN = r"^[^@\s\u0085]+@[^@\s\u0085]+$"
Email = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
Password = Field(min_length=10, max_length=1024, description="At least 10 characters; stored only as an Argon2id hash.")


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _unique(values: list[str] | None) -> list[str] | None:
    return sorted(set(values)) if values is not None else None


class TokenResponse(BaseModel):
    """An OAuth 2.0 token response (RFC 6749, 5.1)."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    scope: str
    refresh_token: str | None = None


class OAuthError(BaseModel):
    """An OAuth 2.0 error (RFC 6749, 5.2)."""

    error: str
    error_description: str


class Me(BaseModel):
    """Who the token belongs to."""

    type: Literal["user", "integration"]
    id: str
    organization_id: str
    roles: list[str]
    scopes: list[str]


class OrganizationPublic(BaseModel):
    """The caller's organization."""

    id: str
    name: str
    data_use_agreement: bool
    version: int
    created_at: datetime
    updated_at: datetime


class OrganizationUpdate(StrictPatch):
    """Changes to the organization."""

    not_null = ("name", "data_use_agreement")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    data_use_agreement: bool | None = Field(default=None, description="True records a data-use agreement covering research exports.")


class UserCreate(StrictInput):
    """A new user of the organization."""

    email: str = Email
    display_name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1, max_length=4)
    password: str = Password
    active: bool = True

    _lower_email = field_validator("email")(_lower)
    _unique_roles = field_validator("roles")(_unique)


class UserUpdate(StrictPatch):
    """Changes to a user; deactivating takes effect at the user's next request."""

    not_null = ("email", "display_name", "roles", "active")
    email: str | None = Field(default=None, min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=4)
    active: bool | None = None

    _lower_email = field_validator("email")(_lower)
    _unique_roles = field_validator("roles")(_unique)


class PasswordChange(StrictInput):
    """A new password."""

    password: str = Password


class UserPublic(BaseModel):
    """A user as the API returns it (never the password)."""

    id: str
    organization_id: str
    email: str
    display_name: str
    roles: list[Role]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class IntegrationCreate(StrictInput):
    """A new machine client."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=6)

    _unique_scopes = field_validator("scopes")(_unique)


class IntegrationPublic(BaseModel):
    """An integration as the API returns it."""

    id: str
    organization_id: str
    name: str
    client_id: str
    scopes: list[Scope]
    version: int
    created_at: datetime


class IntegrationCreated(IntegrationPublic):
    """The create response: the only time ``client_secret`` is shown."""

    client_secret: str
