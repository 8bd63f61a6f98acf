"""Liveness and readiness probes (no token)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute

from app.core.db import transaction
from app.core.errors import Unavailable
from app.core.http import JSON
from app.core.openapi import errors
from app.routing import api_router

router = api_router(tags=["health"], route_class=APIRoute)


@router.get("/healthz")
async def healthz() -> JSON:
    """The process is alive (does not touch the database)."""
    return JSON({"status": "ok"})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Request counts and latency histograms per route and status, in Prometheus format."""
    return PlainTextResponse(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/readyz", responses=errors(503))
async def readyz(request: Request) -> JSON:
    """The database answers within two seconds; else 503 with Retry-After."""
    try:
        async with asyncio.timeout(2):
            async with transaction(request.app.state.engine, write=False) as conn:  # in turn, as requests are
                await conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure to reach the database means not ready
        raise Unavailable() from None
    return JSON({"status": "ready"})
