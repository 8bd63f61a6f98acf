"""Sign-in throttling counts failed sign-ins per account and per address (issue 18): a clinic behind one NAT
address signs in, guessers and sprayers are stopped, and the budgets are shared through Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.core.db import transaction
from app.identity import repository as identity
from app.main import create_app
from tests.conftest import test_settings
from tests.support.live import live_server
from tests.support.redisdb import REDIS_TIMEOUT_SECONDS, REDIS_URL, redis_prefix
from tests.support.world import PASSWORD, World, make_world

WRONG = "wrong-password-guess"
ClientFrom = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def throttled_app(app: FastAPI, database_url: str, limiter: str, **limits: Any) -> AsyncIterator[ClientFrom]:
    """An app on the session database with the default sign-in budgets (or ``limits``); yields clients by address."""
    async with AsyncExitStack() as stack:
        backend = {}
        if limiter == "redis":
            # Failures outlive the test (and prove Redis counted them) unless its window is shorter than the test.
            prefix = stack.enter_context(redis_prefix(expect_keys=limits.get("login_failure_window_seconds", 900) > 60))
            backend = {"redis_url": REDIS_URL, "redis_key_prefix": prefix, "redis_timeout_seconds": REDIS_TIMEOUT_SECONDS}
        budgets = {"login_failures_per_account": 10, "login_failures_per_address": 30, **limits}
        settings = test_settings(database_url, secret_key=app.state.settings.secret_key, **budgets, **backend)
        application = create_app(settings)
        stack.push_async_callback(application.state.rate_limiter.close)
        stack.push_async_callback(application.state.engine.dispose)
        clients: dict[str, httpx.AsyncClient] = {}

        def client_from(address: str) -> httpx.AsyncClient:
            if address not in clients:
                transport = httpx.ASGITransport(app=application, client=(address, 40000))
                clients[address] = httpx.AsyncClient(transport=transport, base_url="http://testserver")
                stack.push_async_callback(clients[address].aclose)
            return clients[address]

        yield client_from


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> str:
    """Where the budgets are kept: this process's memory, or Redis."""
    return request.param


async def _accounts(app: FastAPI, world: World, count: int) -> list[str]:
    """``count`` more clinicians in the world's organization, all with the test password; their emails."""
    password_hash = app.state.secrets.hash_password(PASSWORD)
    emails = [f"clinician-{uuid.uuid4().hex[:12]}@example.test" for _ in range(count)]
    async with transaction(app.state.engine, write=True) as db:
        for email in emails:
            await identity.create_user(db, world.org_id, {"email": email, "display_name": "Clinician",
                                                          "roles": ["clinician"], "password_hash": password_hash})
    return emails


def _password(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"grant_type": "password", "username": email, "password": password}


def _assert_throttled(response: httpx.Response, window: int = 900) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert "access_token" not in response.text


async def _event_of(app: FastAPI, response: httpx.Response) -> dict[str, Any]:
    async with app.state.engine.connect() as db:
        row = (await db.execute(sa.text("SELECT * FROM audit_event WHERE request_id = :r"),
                                {"r": response.headers["x-request-id"]})).mappings().one()
    event = dict(row)
    if isinstance(event["details"], str):
        event["details"] = json.loads(event["details"])
    return event


async def test_fifty_clinicians_behind_one_address_sign_in_refresh_and_integrate(app, database_url, world, limiter):
    emails = await _accounts(app, world, 50)
    async with throttled_app(app, database_url, limiter) as client_from:
        clinic = client_from("203.0.113.7")
        logins = await asyncio.gather(*(clinic.post("/v1/auth/token", data=_password(email)) for email in emails))
        assert [r.status_code for r in logins] == [200] * 50, [r.text for r in logins if r.status_code != 200][:1]
        refreshes = await asyncio.gather(*(
            clinic.post("/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]})
            for r in logins))
        assert [r.status_code for r in refreshes] == [200] * 50
        credentials = {"grant_type": "client_credentials", "client_id": world.ehr.client_id,
                       "client_secret": world.ehr.client_secret}
        for _ in range(15):  # more than the per-account budget: valid client credentials use none of it
            assert (await clinic.post("/v1/auth/token", data=credentials)).status_code == 200
        # 115 successes used nothing: the address still has its whole budget for typos.
        for email in emails[:30]:
            assert (await clinic.post("/v1/auth/token", data=_password(email, WRONG))).status_code == 400


async def test_eleventh_wrong_password_for_one_account_is_refused_from_any_address(app, database_url, world, limiter):
    async with throttled_app(app, database_url, limiter) as client_from:
        for attempt in range(10):
            response = await client_from(f"198.51.100.{attempt + 1}").post("/v1/auth/token", data=_password(world.clinician.email, WRONG))
            assert response.status_code == 400, response.text
        eleventh = await client_from("198.51.100.11").post("/v1/auth/token", data=_password(world.clinician.email, WRONG))
        _assert_throttled(eleventh)
        # The correct password is refused too, from a fresh address, whatever the email's case.
        fresh = client_from("198.51.100.12")
        correct = await fresh.post("/v1/auth/token", data=_password(world.clinician.email.upper()))
        _assert_throttled(correct)
        assert int(correct.headers["retry-after"]) > 800  # the first failure ages out of the 15 minutes only then
        assert (await fresh.post("/v1/auth/token", data=_password(world.clinician2.email))).status_code == 200
    event = await _event_of(app, correct)
    assert (event["action"], event["outcome"]) == ("login_failed", 429)
    assert (event["actor_id"], event["organization_id"]) == (world.clinician.id, world.org_id)
    assert event["details"] == {"throttled": ["account"]} and event["ip"] == "198.51.100.12"
    async with app.state.engine.connect() as db:
        dump = " ".join(str(tuple(r)) for r in (await db.execute(sa.text("SELECT * FROM audit_event"))).all())
    assert PASSWORD not in dump and WRONG not in dump


async def test_parallel_wrong_passwords_never_pass_the_account_budget(app, database_url, world, limiter):
    async with throttled_app(app, database_url, limiter) as client_from:
        guesses = await asyncio.gather(*(
            client_from(f"192.0.2.{n + 1}").post("/v1/auth/token", data=_password(world.supervisor.email, WRONG))
            for n in range(30)))
    assert Counter(r.status_code for r in guesses) == {400: 10, 429: 20}


async def test_password_spray_from_one_address_is_stopped_at_the_address_budget(app, database_url, world, limiter):
    emails = await _accounts(app, world, 50)
    async with throttled_app(app, database_url, limiter) as client_from:
        sprayer = client_from("203.0.113.66")
        statuses = [(await sprayer.post("/v1/auth/token", data=_password(email, WRONG))).status_code for email in emails]
        assert statuses == [400] * 30 + [429] * 20
        # From that address even a correct password, or an integration's valid secret, waits.
        refused = await sprayer.post("/v1/auth/token", data=_password(world.clinician.email))
        _assert_throttled(refused)
        credentials = {"grant_type": "client_credentials", "client_id": world.ehr.client_id,
                       "client_secret": world.ehr.client_secret}
        _assert_throttled(await sprayer.post("/v1/auth/token", data=credentials))
        # Another address is unaffected, for the sprayed accounts too (one wrong password each is no lockout).
        other = client_from("203.0.113.67")
        assert (await other.post("/v1/auth/token", data=_password(world.clinician.email))).status_code == 200
        assert (await other.post("/v1/auth/token", data=_password(emails[0]))).status_code == 200
    event = await _event_of(app, refused)
    assert (event["outcome"], event["details"], event["actor_id"]) == (429, {"throttled": ["address"]}, world.clinician.id)


async def test_parallel_spray_gets_at_most_the_address_budget_plus_its_headroom(app, database_url, world, limiter):
    emails = await _accounts(app, world, 40)
    async with throttled_app(app, database_url, limiter, login_failures_per_address=5) as client_from:
        sprayer = client_from("203.0.113.99")
        guesses = await asyncio.gather(*(sprayer.post("/v1/auth/token", data=_password(e, WRONG)) for e in emails))
    counts = Counter(r.status_code for r in guesses)
    assert counts[400] <= 10 and counts[400] + counts[429] == 40, counts


async def test_failed_refresh_tokens_count_against_the_address(app, database_url, world, limiter):
    async with throttled_app(app, database_url, limiter, login_failures_per_address=3) as client_from:
        junk = client_from("198.51.100.200")
        for n in range(3):
            bogus = {"grant_type": "refresh_token", "refresh_token": f"{uuid.uuid4()}.not-a-secret-{n}"}
            assert (await junk.post("/v1/auth/token", data=bogus)).status_code == 400
        _assert_throttled(await junk.post("/v1/auth/token", data=_password(world.clinician.email)))
        # Malformed requests checked no credential: they are not counted.
        elsewhere = client_from("198.51.100.201")
        for _ in range(5):
            assert (await elsewhere.post("/v1/auth/token", data={"grant_type": "password"})).status_code == 400
        assert (await elsewhere.post("/v1/auth/token", data=_password(world.clinician.email))).status_code == 200


async def test_throttled_account_signs_in_once_retry_after_has_passed(app, database_url, world, limiter):
    async with throttled_app(app, database_url, limiter, login_failures_per_account=2,
                             login_failure_window_seconds=3) as client_from:
        http = client_from("198.51.100.77")
        for _ in range(2):
            assert (await http.post("/v1/auth/token", data=_password(world.researcher.email, WRONG))).status_code == 400
        refused = await http.post("/v1/auth/token", data=_password(world.researcher.email))
        _assert_throttled(refused, window=3)
        await asyncio.sleep(int(refused.headers["retry-after"]))
        assert (await http.post("/v1/auth/token", data=_password(world.researcher.email))).status_code == 200


def _live_env(prefix: str) -> dict[str, str]:
    return {"IPT_REDIS_URL": REDIS_URL, "IPT_REDIS_KEY_PREFIX": prefix, "IPT_REDIS_TIMEOUT_SECONDS": str(REDIS_TIMEOUT_SECONDS),
            "IPT_LOGIN_FAILURES_PER_ACCOUNT": "10", "IPT_LOGIN_FAILURES_PER_ADDRESS": "30"}


async def test_parallel_wrong_passwords_over_http_stop_at_the_account_budget(app, database_url, world):
    with redis_prefix() as prefix:
        with live_server(database_url, app.state.settings.secret_key, **_live_env(prefix)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                guesses = await asyncio.gather(*(
                    http.post("/v1/auth/token", data=_password(world.clinician2.email, WRONG)) for _ in range(30)))
                assert Counter(r.status_code for r in guesses) == {400: 10, 429: 20}
                _assert_throttled(await http.post("/v1/auth/token", data=_password(world.clinician2.email)))
                assert (await http.post("/v1/auth/token", data=_password(world.clinician.email))).status_code == 200


async def test_two_processes_share_the_sign_in_budgets_through_redis(pg_app, postgres_url):
    """Failures counted by one ``ipt serve`` count on the other (PostgreSQL: SQLite is for one process)."""
    world = await make_world(pg_app)
    emails = await _accounts(pg_app, world, 11)
    with redis_prefix() as prefix:
        env = _live_env(prefix)
        with ExitStack() as stack, ThreadPoolExecutor(2) as pool:  # start both servers at once
            first, second = pool.map(stack.enter_context, [live_server(postgres_url, pg_app.state.settings.secret_key,
                                                                       **env) for _ in range(2)])
            async with httpx.AsyncClient(timeout=30) as http:
                # One account, guessed through both processes in turn: ten failures in all, then refused on both.
                for n in range(10):
                    base = (first, second)[n % 2]
                    wrong = await http.post(f"{base}/v1/auth/token", data=_password(world.clinician.email, WRONG))
                    assert wrong.status_code == 400, wrong.text
                _assert_throttled(await http.post(f"{first}/v1/auth/token", data=_password(world.clinician.email, WRONG)))
                _assert_throttled(await http.post(f"{second}/v1/auth/token", data=_password(world.clinician.email)))
                # Parallel guesses split over both processes still get ten failures, no more.
                guesses = await asyncio.gather(*(
                    http.post(f"{(first, second)[n % 2]}/v1/auth/token", data=_password(world.supervisor.email, WRONG))
                    for n in range(30)))
                assert Counter(r.status_code for r in guesses) == {400: 10, 429: 20}
                # The address has failed 20 times; ten more sprayed over both processes and it is refused on both.
                for n, email in enumerate(emails[:10]):
                    base = (first, second)[n % 2]
                    assert (await http.post(f"{base}/v1/auth/token", data=_password(email, WRONG))).status_code == 400
                for base in (first, second):
                    _assert_throttled(await http.post(f"{base}/v1/auth/token", data=_password(emails[10])))
