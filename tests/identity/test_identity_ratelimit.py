"""The token endpoint is rate-limited per client address and per account (api.md, Limits)."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from app.main import create_app
from tests.conftest import test_settings as make_settings
from tests.support.world import PASSWORD

LIMIT = 3


@asynccontextmanager
async def _limited_app(database_url: str):
    """An app allowing three token requests a minute; yields a factory of clients, one per address."""
    # The windows are fixed minutes: start early in one, so all attempts of a test land in the same window.
    if (left := 60 - time.time() % 60) < 5:
        await asyncio.sleep(left + 0.1)
    application = create_app(make_settings(database_url, login_rate_limit_per_minute=LIMIT))
    async with AsyncExitStack() as stack:

        async def client_from(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=application, client=(address, 40000))
            return await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://testserver"))

        try:
            yield client_from
        finally:
            await application.state.engine.dispose()


def _login(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"grant_type": "password", "username": email, "password": password}


def _assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    assert "access_token" not in response.text


async def test_token_requests_for_one_account_are_limited_across_addresses(database_url, world):
    async with _limited_app(database_url) as client_from:
        for attempt in range(LIMIT):
            http = await client_from(f"10.1.0.{attempt + 1}")
            response = await http.post("/v1/auth/token", data=_login(world.clinician.email, "wrong-password-guess"))
            assert response.status_code == 400, response.text
        # A fresh address, and now even the right password: the account is throttled.
        fresh = await client_from("10.1.0.99")
        _assert_rate_limited(await fresh.post("/v1/auth/token", data=_login(world.clinician.email.upper())))
        # Another account from that fresh address still gets in.
        assert (await fresh.post("/v1/auth/token", data=_login(world.clinician2.email))).status_code == 200


async def test_token_requests_from_one_address_are_limited_across_accounts(database_url, world):
    async with _limited_app(database_url) as client_from:
        sprayer = await client_from("10.2.0.1")
        for name in ("admin", "supervisor", "clinician"):
            response = await sprayer.post("/v1/auth/token", data=_login(getattr(world, name).email, "wrong-password-guess"))
            assert response.status_code == 400, response.text
        _assert_rate_limited(await sprayer.post("/v1/auth/token", data=_login(world.researcher.email)))
        # Client credentials from that address are throttled too.
        _assert_rate_limited(
            await sprayer.post(
                "/v1/auth/token",
                data={"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": world.ehr.client_secret},
            )
        )
        # Another address, asking for an account the sprayer did not touch, is unaffected.
        other = await client_from("10.2.0.2")
        assert (await other.post("/v1/auth/token", data=_login(world.researcher.email))).status_code == 200
