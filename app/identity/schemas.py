"""Identity request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.schemas import StrictInput, StrictPatch
from app.identity.assertions import key_set_problem
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


class SmartConfiguration(BaseModel):
    """SMART App Launch 2.x discovery (``/.well-known/smart-configuration``), for Backend Services."""

    token_endpoint: str
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    grant_types_supported: list[str]
    scopes_supported: list[str]
    capabilities: list[str]


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


# An http(s) URL with a host and no credentials (as webhook URLs; the host is resolved and checked too).
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
JWKS_URL_PATTERN = rf"^https?://[A-Za-z0-9.-]+(:{_PORT})?([/?#][!-~]*)?$"


class PublicJwk(BaseModel):
    """A public signing key (RFC 7517): RSA for RS384, or EC P-384 for ES384; other members are kept."""

    model_config = ConfigDict(extra="allow")
    kty: Literal["RSA", "EC"]
    kid: str = Field(min_length=1, max_length=200)
    alg: Literal["RS384", "ES384"] | None = None
    use: Literal["sig"] | None = None
    n: str | None = None
    e: str | None = None
    crv: Literal["P-384"] | None = None
    x: str | None = None
    y: str | None = None


class Jwks(BaseModel):
    """A JSON Web Key Set of public keys (RFC 7517, 5)."""

    model_config = ConfigDict(extra="allow")
    keys: list[PublicJwk] = Field(min_length=1, max_length=20)


class IntegrationCreate(StrictInput):
    """A new machine client: a client secret is issued unless it registers a public key set (``jwks`` or ``jwks_url``)."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=6)
    jwks: Jwks | None = Field(default=None, description="Public keys for signed client assertions (SMART Backend Services).")
    jwks_url: str | None = Field(default=None, min_length=8, max_length=2000, pattern=JWKS_URL_PATTERN,
                                 description="Where the client publishes its public keys; fetched and cached.")

    _unique_scopes = field_validator("scopes")(_unique)

    @model_validator(mode="after")
    def _one_key_source(self) -> IntegrationCreate:
        if self.jwks is not None and self.jwks_url is not None:
            raise ValueError("register either jwks or jwks_url, not both")
        problem = key_set_problem(self.jwks.model_dump(exclude_none=True)) if self.jwks is not None else None
        if problem:
            raise ValueError(f"jwks: {problem}")
        return self


class IntegrationUpdate(StrictPatch):
    """Changes to an integration; needs If-Match. A new ``jwks`` or ``jwks_url`` replaces the key set (key rotation),
    or replaces a client secret, which then stops working."""

    not_null = ("name", "scopes", "jwks", "jwks_url")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[Scope] | None = Field(default=None, min_length=1, max_length=6)
    jwks: Jwks | None = None
    jwks_url: str | None = Field(default=None, min_length=8, max_length=2000, pattern=JWKS_URL_PATTERN)

    _unique_scopes = field_validator("scopes")(_unique)

    @model_validator(mode="after")
    def _one_key_source(self) -> IntegrationUpdate:
        if self.jwks is not None and self.jwks_url is not None:
            raise ValueError("send either jwks or jwks_url, not both")
        problem = key_set_problem(self.jwks.model_dump(exclude_none=True)) if self.jwks is not None else None
        if problem:
            raise ValueError(f"jwks: {problem}")
        return self


class IntegrationPublic(BaseModel):
    """An integration as the API returns it."""

    id: str
    organization_id: str
    name: str
    client_id: str
    scopes: list[Scope]
    jwks: Jwks | None = None
    jwks_url: str | None = None
    version: int
    created_at: datetime


class IntegrationCreated(IntegrationPublic):
    """The create response: the only time ``client_secret`` is shown (null for a key-set integration)."""

    client_secret: str | None
