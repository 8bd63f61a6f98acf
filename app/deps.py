"""Request dependencies: the transaction, the caller, and scope checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import transaction
from app.core.errors import Forbidden, Unauthenticated
from app.core.security import InvalidToken
from app.identity.models import AppUser, Integration
from app.identity.roles import scopes_for_roles

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="An access token from POST /v1/auth/token.")
_user_q = sa.select(AppUser.active, AppUser.roles).where(
    AppUser.id == sa.bindparam("sub"), AppUser.organization_id == sa.bindparam("org")
)
_integration_q = sa.select(Integration.scopes).where(
    Integration.id == sa.bindparam("sub"),
    Integration.organization_id == sa.bindparam("org"),
    Integration.deleted_at.is_(None),
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a user (with roles) or an integration."""

    kind: str
    id: str
    organization_id: str
    scopes: frozenset[str]
    roles: tuple[str, ...] = ()

    @property
    def sees_whole_organization(self) -> bool:
        """Supervisors and integrations reach every course; clinicians only their caseload."""
        return self.kind == "integration" or "supervisor" in self.roles

    def require(self, scope: str) -> None:
        """403 unless the caller holds the scope."""
        if scope not in self.scopes:
            raise Forbidden(f"This needs the {scope} scope.")


async def get_db(request: Request) -> AsyncIterator[AsyncConnection]:
    """One transaction per request, committed before the response is sent."""
    async with transaction(request.app.state.engine, write=request.method not in _READ_METHODS) as conn:
        yield conn


Db = Annotated[AsyncConnection, Depends(get_db, scope="function")]


async def get_principal(
    request: Request, db: Db, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Verify the bearer token, then re-read the account so deactivation bites at once."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated()
    try:
        claims = request.app.state.secrets.decode_access_token(credentials.credentials)
    except InvalidToken:
        raise Unauthenticated("The bearer token is invalid or expired.") from None
    params = {"sub": claims.sub, "org": claims.org}
    if claims.kind == "user":
        row = (await db.execute(_user_q, params)).first()
        if row is None or not row.active:
            raise Unauthenticated("The account is not active.")
        roles = tuple(row.roles)
        granted = scopes_for_roles(roles)
    else:
        row = (await db.execute(_integration_q, params)).first()
        if row is None:
            raise Unauthenticated("The integration has been revoked.")
        roles, granted = (), frozenset(row.scopes)
    principal = Principal(claims.kind, claims.sub, claims.org, claims.scopes & granted, roles)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def scoped(scope: str):  # noqa: ANN201
    """A dependency returning the caller once it holds ``scope``."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(scope)
        return principal

    return Depends(dependency)


ClinicalReader = Annotated[Principal, scoped("clinical:read")]
ClinicalWriter = Annotated[Principal, scoped("clinical:write")]
OrgAdmin = Annotated[Principal, scoped("org:admin")]
