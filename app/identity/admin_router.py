"""Organization administration: the organization, its users and its integrations (org:admin)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.core.http import JSON, required_version, resource
from app.core.openapi import AUTH, errors, if_match
from app.core.outbound import check_public_url
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.deps import Db, OrgAdmin
from app.identity import accounts, repository
from app.identity.schemas import (
    IntegrationCreate,
    IntegrationCreated,
    IntegrationPublic,
    IntegrationUpdate,
    OrganizationPublic,
    OrganizationUpdate,
    PasswordChange,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from app.routing import api_router

router = api_router(prefix="/v1", tags=["admin"])


@router.get("/organization", response_model=OrganizationPublic, responses=errors(*AUTH))
async def get_organization(db: Db, admin: OrgAdmin) -> JSON:
    """Read the caller's organization."""
    return resource(await repository.get_organization(db, admin.organization_id))


@router.patch("/organization", response_model=OrganizationPublic, responses=errors(*AUTH, 400, 412, 428), openapi_extra=if_match())
async def update_organization(body: OrganizationUpdate, request: Request, db: Db, admin: OrgAdmin) -> JSON:
    """Rename the organization or record its data-use agreement; needs If-Match."""
    version = required_version(request)
    return resource(await repository.update_organization(db, admin.organization_id, version, body.changes()))


@router.post("/users", status_code=201, response_model=UserPublic, responses=errors(*AUTH, 400, 409))
async def create_user(body: UserCreate, request: Request, db: Db, admin: OrgAdmin) -> JSON:
    """Add a user with roles and an initial password; 409 email_taken if the email exists."""
    values = body.model_dump(exclude={"password"})
    values["password_hash"] = await run_in_threadpool(request.app.state.secrets.hash_password, body.password)
    row = await repository.create_user(db, admin.organization_id, values)
    return resource(row, status=201, headers={"Location": f"/v1/users/{row['id']}"})


@router.get("/users", response_model=ListOf[UserPublic], responses=errors(*AUTH))
async def list_users(db: Db, admin: OrgAdmin, page: Annotated[Page, Depends(page_params("users"))]) -> JSON:
    """List the organization's users."""
    return JSON(await repository.list_users(db, admin.organization_id, page))


@router.get("/users/{user_id}", response_model=UserPublic, responses=errors(*AUTH, 404))
async def get_user(user_id: str, db: Db, admin: OrgAdmin) -> JSON:
    """Read one user."""
    return resource(await repository.get_user(db, admin.organization_id, user_id))


@router.patch("/users/{user_id}", response_model=UserPublic, responses=errors(*AUTH, 400, 404, 409, 412, 428), openapi_extra=if_match())
async def update_user(user_id: str, body: UserUpdate, request: Request, db: Db, admin: OrgAdmin) -> JSON:
    """Change a user's email, name, roles or active flag; needs If-Match."""
    version = required_version(request)
    changes = body.changes()
    user = await repository.update_user(db, admin.organization_id, user_id, version, changes)
    request.app.state.accounts.evict(accounts.key("user", user_id))  # here at once; other processes on NOTIFY
    if changes.get("active") is False:
        await repository.revoke_user_tokens(db, user_id)
    return resource(user)


@router.put("/users/{user_id}/password", status_code=204, responses=errors(*AUTH, 400, 404, 412, 428), openapi_extra=if_match())
async def set_user_password(user_id: str, body: PasswordChange, request: Request, db: Db, admin: OrgAdmin) -> Response:
    """Set a user's password; needs If-Match with the user's ETag."""
    version = required_version(request)
    password_hash = await run_in_threadpool(request.app.state.secrets.hash_password, body.password)
    row = await repository.update_user(db, admin.organization_id, user_id, version, {"password_hash": password_hash})
    await repository.revoke_user_tokens(db, user_id)  # a new password ends every session of the old one
    return Response(status_code=204, headers={"ETag": f'"{row["version"]}"'})


@router.post("/integrations", status_code=201, response_model=IntegrationCreated, responses=errors(*AUTH, 400, 422))
async def create_integration(body: IntegrationCreate, request: Request, db: Db, admin: OrgAdmin) -> JSON:
    """Register a machine client: with a public key set (jwks or jwks_url) it signs client assertions
    (SMART Backend Services); otherwise a client_secret is issued, shown only in this response."""
    secrets = request.app.state.secrets
    values = {"name": body.name, "scopes": body.scopes, "client_id": "ipt_" + secrets.new_secret()[:24]}
    client_secret = None
    if body.jwks is not None:
        values["jwks"] = body.jwks.model_dump(exclude_none=True)
    elif body.jwks_url is not None:
        allow_private = request.app.state.settings.webhook_allow_private
        await asyncio.to_thread(check_public_url, body.jwks_url, allow_private, what="JWKS URL", loc=["jwks_url"])
        values["jwks_url"] = body.jwks_url
    else:
        client_secret = secrets.new_secret()
        values["secret_hash"] = secrets.hash_secret(client_secret)
    row = await repository.create_integration(db, admin.organization_id, values)
    return resource(row | {"client_secret": client_secret}, status=201, headers={"Location": f"/v1/integrations/{row['id']}"})


@router.get("/integrations", response_model=ListOf[IntegrationPublic], responses=errors(*AUTH))
async def list_integrations(db: Db, admin: OrgAdmin, page: Annotated[Page, Depends(page_params("integrations"))]) -> JSON:
    """List the organization's integrations."""
    return JSON(await repository.list_integrations(db, admin.organization_id, page))


@router.get("/integrations/{integration_id}", response_model=IntegrationPublic, responses=errors(*AUTH, 404))
async def get_integration(integration_id: str, db: Db, admin: OrgAdmin) -> JSON:
    """Read one integration (never its secret)."""
    return resource(await repository.get_integration(db, admin.organization_id, integration_id))


@router.patch("/integrations/{integration_id}", response_model=IntegrationPublic,
              responses=errors(*AUTH, 400, 404, 412, 422, 428), openapi_extra=if_match())
async def update_integration(integration_id: str, body: IntegrationUpdate, request: Request, db: Db, admin: OrgAdmin) -> JSON:
    """Rename an integration, change its scopes, or rotate its public keys (a new jwks or jwks_url, which also
    replaces a client secret: the secret stops working); needs If-Match. Takes effect at its next request."""
    version = required_version(request)
    changes = body.changes()
    if "jwks" in changes:
        changes |= {"jwks": body.jwks.model_dump(exclude_none=True), "jwks_url": None, "secret_hash": None}
    elif "jwks_url" in changes:
        allow_private = request.app.state.settings.webhook_allow_private
        await asyncio.to_thread(check_public_url, body.jwks_url, allow_private, what="JWKS URL", loc=["jwks_url"])
        changes |= {"jwks": None, "secret_hash": None}
    row = await repository.update_integration(db, admin.organization_id, integration_id, version, changes)
    request.app.state.accounts.evict(accounts.key("integration", integration_id))  # here at once; others on NOTIFY
    return resource(row)


@router.delete("/integrations/{integration_id}", status_code=204, responses=errors(*AUTH, 404, 412, 428), openapi_extra=if_match())
async def delete_integration(integration_id: str, request: Request, db: Db, admin: OrgAdmin) -> Response:
    """Revoke an integration: its tokens stop working at their next request. Needs If-Match."""
    version = required_version(request)
    await repository.revoke_integration(db, admin.organization_id, integration_id, version)
    request.app.state.accounts.evict(accounts.key("integration", integration_id))  # here at once; others on NOTIFY
    return Response(status_code=204)
