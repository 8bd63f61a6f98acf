"""Webhook subscriptions and their delivery logs (webhooks:manage)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from app.core.http import JSON, required_version, resource
from app.core.ids import new_id
from app.core.openapi import AUTH, errors, if_match
from app.core.pagination import Page, page_params
from app.core.schemas import ListOf
from app.deps import Db, Principal, scoped
from app.routing import api_router
from app.webhooks import repository
from app.webhooks.schemas import DeliveryPublic, WebhookCreate, WebhookCreated, WebhookPublic, WebhookUpdate
from app.webhooks.signing import check_url, new_secret

router = api_router(prefix="/v1/webhooks", tags=["webhooks"])
Manager = Annotated[Principal, scoped("webhooks:manage")]


async def _check(request: Request, url: str) -> None:
    await asyncio.to_thread(check_url, url, request.app.state.settings.webhook_allow_private)


@router.post("", status_code=201, response_model=WebhookCreated, responses=errors(*AUTH, 400))
async def create_webhook(body: WebhookCreate, request: Request, db: Db, principal: Manager) -> JSON:
    """Subscribe a URL to events; the signing secret is shown only in this response."""
    await _check(request, body.url)
    secret, subscription_id = new_secret(), new_id()
    sealed = request.app.state.secrets.box.seal(secret, subscription_id)  # the database never holds it in the clear
    row = await repository.create(db, principal.organization_id, body.model_dump() | {"id": subscription_id, "secret": sealed})
    return resource(row | {"secret": secret}, status=201, headers={"Location": f"/v1/webhooks/{row['id']}"})


@router.get("", response_model=ListOf[WebhookPublic], responses=errors(*AUTH))
async def list_webhooks(db: Db, principal: Manager, page: Annotated[Page, Depends(page_params("webhooks"))]) -> JSON:
    """List the organization's subscriptions."""
    return JSON(await repository.list_page(db, principal.organization_id, page))


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=errors(*AUTH, 404))
async def get_webhook(webhook_id: str, db: Db, principal: Manager) -> JSON:
    """Read a subscription (never its secret)."""
    return resource(await repository.get(db, principal.organization_id, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookPublic, responses=errors(*AUTH, 400, 404, 412, 428), openapi_extra=if_match())
async def update_webhook(webhook_id: str, body: WebhookUpdate, request: Request, db: Db, principal: Manager) -> JSON:
    """Change the URL, events or active flag; needs If-Match."""
    version = required_version(request)
    changes = body.changes()
    if "url" in changes:
        await _check(request, changes["url"])
    return resource(await repository.update(db, principal.organization_id, webhook_id, version, changes))


@router.delete("/{webhook_id}", status_code=204, responses=errors(*AUTH, 404, 412, 428), openapi_extra=if_match())
async def delete_webhook(webhook_id: str, request: Request, db: Db, principal: Manager) -> Response:
    """Delete a subscription and its delivery log; needs If-Match."""
    await repository.delete(db, principal.organization_id, webhook_id, required_version(request))
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=ListOf[DeliveryPublic], responses=errors(*AUTH, 404))
async def list_deliveries(
    webhook_id: str, db: Db, principal: Manager, page: Annotated[Page, Depends(page_params("deliveries"))]
) -> JSON:
    """The delivery log: one row per event, with attempts, last status and next try."""
    await repository.get(db, principal.organization_id, webhook_id)
    return JSON(await repository.deliveries(db, webhook_id, page))


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", status_code=202, response_model=DeliveryPublic,
             responses=errors(*AUTH, 404))
async def retry_delivery(webhook_id: str, delivery_id: str, db: Db, principal: Manager) -> JSON:
    """Deliver again as soon as the worker next runs (also after it gave up)."""
    await repository.get(db, principal.organization_id, webhook_id)
    await repository.get_delivery(db, webhook_id, delivery_id)
    await repository.schedule_retry(db, delivery_id)
    return JSON(await repository.get_delivery(db, webhook_id, delivery_id), status_code=202)
