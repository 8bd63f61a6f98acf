"""Request dependencies: the transaction, the caller, and scope checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import Forbidden, Unauthenticated
from app.core.fastsql import Statement
from app.core.openapi import requires_bearer
from app.identity import accounts
from app.identity.models import AppUser, Integration
from app.identity.roles import scopes_for_roles

_user_q = Statement(sa.select(AppUser.active, AppUser.roles).where(
    AppUser.id == sa.bindparam("sub"), AppUser.organization_id == sa.bindparam("org")
))
_integration_q = Statement(sa.select(Integration.scopes).where(
    Integration.id == sa.bindparam("sub"),
    Integration.organization_id == sa.bindparam("org"),
    Integration.deleted_at.is_(None),
))


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


async def get_db(request: Request) -> AsyncConnection:
    """The request's transaction, opened by the pipeline (app.pipeline) around the route."""
    return request.state.db


Db = Annotated[AsyncConnection, Depends(get_db)]


# The bearer token is the pipeline's to read (it did, once); app.core.openapi documents it on every
# route that depends on these, without a sub-dependency FastAPI would solve on every request.
@requires_bearer
async def get_principal(request: Request) -> Principal:
    """The caller of the token the pipeline verified, checked against its account so deactivation bites at once."""
    claims = getattr(request.state, "claims", None)
    if claims is None:
        given = getattr(request.state, "bearer_given", False)
        raise Unauthenticated("The bearer token is invalid or expired." if given else "A valid bearer token is required.")
    db = request.state.db
    if claims.kind == "user":
        row = await _account(request, db, _user_q, claims)
        if row is None or not row["active"]:
            raise Unauthenticated("The account is not active.")
        roles = tuple(row["roles"])
        granted = scopes_for_roles(roles)
    else:
        row = await _account(request, db, _integration_q, claims)
        if row is None:
            raise Unauthenticated("The integration has been revoked.")
        roles, granted = (), frozenset(row["scopes"])
    principal = Principal(claims.kind, claims.sub, claims.org, claims.scopes & granted, roles)
    request.state.principal = principal
    return principal


async def _account(request: Request, db: AsyncConnection, query: Statement, claims: Any) -> dict | None:
    """The caller's account row: from the process's cache when it is live (app.identity.accounts), else read."""
    cache = request.app.state.accounts
    account = accounts.key(claims.kind, claims.sub)
    row = cache.get(account)
    if row is not None and row["organization_id"] == claims.org:
        return row
    generation = cache.generation
    row = await query.first(db, {"sub": claims.sub, "org": claims.org})
    if row is not None:
        cache.put(account, row | {"organization_id": claims.org}, generation)
    return row


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def scoped(scope: str):
    """A dependency returning the caller once it holds ``scope``."""

    # One level of dependencies, not two: FastAPI's resolution costs per dependency, on every request.
    @requires_bearer
    async def dependency(request: Request) -> Principal:
        principal = await get_principal(request)
        principal.require(scope)
        return principal

    return Depends(dependency)


ClinicalReader = Annotated[Principal, scoped("clinical:read")]
ClinicalWriter = Annotated[Principal, scoped("clinical:write")]
OrgAdmin = Annotated[Principal, scoped("org:admin")]
