"""Every domain's router, built one way, and the app's flat route table.

FastAPI 0.163 keeps included routers as a tree and walks it, with bookkeeping per candidate,
on every request: a route deep in the tree cost about 0.1 ms just to be found. The app instead
holds every route in one flat list (`mount`), hottest domains first. That only works if each
router already carries what `include_router` would have added, which `api_router` guarantees:
the pipeline route class, the JSON response class and the app's operation ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.core.http import JSON
from app.core.openapi import operation_id
from app.pipeline import AuditedRoute


def api_router(*, route_class: type[APIRoute] = AuditedRoute, **options: Any) -> APIRouter:
    """A router whose routes run through the pipeline (auth, one transaction, audit) and answer JSON."""
    options.setdefault("default_response_class", JSON)
    return APIRouter(route_class=route_class, generate_unique_id_function=operation_id, **options)


def mount(app: FastAPI, *routers: APIRouter) -> None:
    """Add the routers' routes straight to the app's own route list, in the order given."""
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"{route!r}: only routes made by api_router can be mounted flat")
            app.router.routes.append(route)
