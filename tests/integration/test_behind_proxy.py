"""Behind a real nginx: the client address, scheme and host it forwards are believed, and only from it.

nginx (Debian's package) connects upstream from 127.0.0.2, the one trusted proxy (IPT_TRUSTED_PROXIES);
clients reach nginx from 127.0.0.3 and other loopback addresses, and reach the app directly from
127.0.0.1, an untrusted peer whose forwarding headers must change nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from tests.support.clinic import open_course
from tests.support.infra import require_binary
from tests.support.live import live_process
from tests.support.nginx import nginx_proxy

pytestmark = pytest.mark.slow

PUBLIC_HOST = "api.clinic.test"  # what nginx says the client asked for (X-Forwarded-Host), https
RATE_LIMIT = 8  # requests a minute per caller
LOGIN_FAILURES = 4  # failed sign-ins per client address
SPOOF = {"X-Forwarded-For": "198.51.100.66", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
         "Forwarded": 'for=198.51.100.66;proto=https;host=evil.example'}


@dataclass
class Deployment:
    """The app as deployed: ``direct`` is ipt serve itself, ``proxy`` the nginx in front of it."""

    direct: str
    proxy: str


@pytest.fixture(scope="module")
def deployment(app, database_url) -> Iterator[Deployment]:
    binary = require_binary("nginx")
    env = {"IPT_TRUSTED_PROXIES": "127.0.0.2", "IPT_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
           "IPT_LOGIN_FAILURES_PER_ADDRESS": str(LOGIN_FAILURES)}
    with live_process(database_url, app.state.settings.secret_key, **env) as server, \
            nginx_proxy([server.base], bind_address="127.0.0.2", binary=binary,
                        extra_headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC_HOST}) as proxy:
        yield Deployment(server.base, proxy)


def _http(base: str, local_address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``local_address`` (any 127.x address works on Linux)."""
    return httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(local_address=local_address), timeout=10)


@pytest.fixture
async def via_nginx(deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(deployment.proxy, "127.0.0.3") as http:
        yield http


@pytest.fixture
async def direct(deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(deployment.direct, "127.0.0.1") as http:
        yield http


async def _audited_address(app, request_id: str) -> list[str]:
    async with app.state.engine.connect() as db:
        rows = await db.execute(sa.text("SELECT ip FROM audit_event WHERE request_id = :r"), {"r": request_id})
        return [ip for (ip,) in rows]


def _room_in_this_minute(seconds: float) -> None:
    """The limits count in fixed windows of a minute: start where this one has room for the test."""
    remaining = 60 - time.time() % 60
    if remaining < seconds:
        time.sleep(remaining + 0.05)


async def test_audit_events_record_the_client_nginx_forwarded(app, world, via_nginx):
    for headers in ({}, {"X-Forwarded-For": "198.51.100.66"}, {"Forwarded": "for=198.51.100.66"}):
        # A client's own X-Forwarded-For is left of what nginx appends; its Forwarded is not read at all.
        request_id = uuid.uuid4().hex
        response = await via_nginx.get("/v1/patients", headers={**world.clinician.headers, **headers, "X-Request-ID": request_id})
        assert response.status_code == 200, response.text
        assert await _audited_address(app, request_id) == ["127.0.0.3"], headers
    request_id = uuid.uuid4().hex  # a refusal too
    assert (await via_nginx.get("/v1/patients", headers={"X-Request-ID": request_id})).status_code == 401
    assert await _audited_address(app, request_id) == ["127.0.0.3"]


async def test_forwarding_headers_from_an_untrusted_peer_change_no_audit_address(app, world, direct):
    request_id = uuid.uuid4().hex
    response = await direct.get("/v1/patients", headers={**world.clinician.headers, **SPOOF, "X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    assert await _audited_address(app, request_id) == ["127.0.0.1"]


async def test_fhir_urls_and_redirects_carry_the_scheme_and_host_nginx_forwarded(client, world, via_nginx):
    course = await open_course(client, world.clinician)
    bundle = (await via_nginx.get(f"/fhir/r4/EpisodeOfCare/{course['id']}/$everything", headers=world.clinician.headers)).json()
    assert bundle["entry"] and all(e["fullUrl"].startswith(f"https://{PUBLIC_HOST}/fhir/r4/") for e in bundle["entry"])
    assert bundle["link"][0]["url"] == f"https://{PUBLIC_HOST}/fhir/r4/EpisodeOfCare/{course['id']}/$everything"
    statement = (await via_nginx.get("/fhir/r4/metadata")).json()
    assert statement["implementation"]["url"] == f"https://{PUBLIC_HOST}/fhir/r4"
    redirect = await via_nginx.get("/v1/courses/", headers=world.clinician.headers)
    assert (redirect.status_code, redirect.headers["location"]) == (307, f"https://{PUBLIC_HOST}/v1/courses")
    # A created resource's Location is relative: it resolves against whatever URL the client used.
    created = await via_nginx.post("/v1/patients", json={"display_name": "Proxied"}, headers=world.clinician.headers)
    assert created.status_code == 201 and created.headers["location"] == f"/v1/patients/{created.json()['id']}"


async def test_fhir_urls_and_redirects_ignore_an_untrusted_peers_forwarding_headers(client, world, deployment, direct):
    course = await open_course(client, world.clinician)
    url = f"/fhir/r4/EpisodeOfCare/{course['id']}/$everything"
    bundle = (await direct.get(url, headers={**world.clinician.headers, **SPOOF})).json()
    assert bundle["entry"] and all(e["fullUrl"].startswith(f"{deployment.direct}/fhir/r4/") for e in bundle["entry"])
    statement = (await direct.get("/fhir/r4/metadata", headers=SPOOF)).json()
    assert statement["implementation"]["url"] == f"{deployment.direct}/fhir/r4"
    redirect = await direct.get("/v1/courses/", headers=SPOOF)
    assert redirect.headers["location"] == f"{deployment.direct}/v1/courses"


async def test_the_per_caller_limit_counts_each_client_behind_nginx_apart(deployment, direct):
    _room_in_this_minute(15)
    async with _http(deployment.proxy, "127.0.0.5") as first, _http(deployment.proxy, "127.0.0.6") as second:
        # Anonymous callers are counted by address: each 401 counts, then 429.
        statuses = [(await first.get("/v1/patients")).status_code for _ in range(RATE_LIMIT + 1)]
        assert statuses == [401] * RATE_LIMIT + [429]
        assert (await second.get("/v1/patients")).status_code == 401  # the same proxy, another client
    # Straight to the app, a new X-Forwarded-For each time does not make a new caller.
    statuses = [(await direct.get("/v1/patients", headers={**SPOOF, "X-Forwarded-For": f"198.51.100.{i}"})).status_code
                for i in range(RATE_LIMIT + 1)]
    assert statuses == [401] * RATE_LIMIT + [429]


async def _fail_sign_in(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    """A wrong password for a new account each time (a spray): the answer's status."""
    form = {"grant_type": "password", "username": f"nobody-{uuid.uuid4().hex[:8]}@example.test", "password": "wrong"}
    return (await http.post("/v1/auth/token", data=form, headers=headers or {})).status_code


async def test_sign_in_throttling_counts_each_client_behind_nginx_apart(app, deployment, direct):
    async with _http(deployment.proxy, "127.0.0.8") as sprayer, _http(deployment.proxy, "127.0.0.9") as colleague:
        assert [await _fail_sign_in(sprayer) for _ in range(LOGIN_FAILURES)] == [400] * LOGIN_FAILURES
        request_id = uuid.uuid4().hex
        assert await _fail_sign_in(sprayer, {"X-Request-ID": request_id}) == 429
        assert await _audited_address(app, request_id) == ["127.0.0.8"]
        assert await _fail_sign_in(colleague) == 400  # behind the same proxy, a budget of its own
    # Straight to the app, forged X-Forwarded-For values share the one real address's budget.
    statuses = [await _fail_sign_in(direct, {**SPOOF, "X-Forwarded-For": f"198.51.100.{i}"}) for i in range(LOGIN_FAILURES + 1)]
    assert statuses == [400] * LOGIN_FAILURES + [429]


async def test_forwarded_mode_behind_nginx_balancing_two_processes(app, database_url, world):
    """IPT_PROXY_HEADERS=forwarded: RFC 7239 Forwarded is believed and X-Forwarded-For is not; nginx spreads requests."""
    binary = require_binary("nginx")
    env = {"IPT_TRUSTED_PROXIES": "127.0.0.2/31", "IPT_PROXY_HEADERS": "forwarded"}  # a network: .2 and .3
    key = app.state.settings.secret_key
    # nginx writes Forwarded (replacing any the client sent) and passes the client's X-Forwarded-* through.
    forwarded = {"Forwarded": f"for=$remote_addr;proto=https;host={PUBLIC_HOST}", "X-Forwarded-For": "$http_x_forwarded_for",
                 "X-Forwarded-Proto": "$http_x_forwarded_proto", "X-Forwarded-Host": "$http_x_forwarded_host"}
    with live_process(database_url, key, **env) as one, live_process(database_url, key, **env) as two, \
            nginx_proxy([one.base, two.base], bind_address="127.0.0.2", binary=binary, extra_headers=forwarded) as proxy:
        async with _http(proxy, "127.0.0.7") as http:
            for _ in range(4):
                request_id = uuid.uuid4().hex
                headers = {**world.clinician.headers, **SPOOF, "X-Request-ID": request_id}
                assert (await http.get("/v1/patients", headers=headers)).status_code == 200
                assert await _audited_address(app, request_id) == ["127.0.0.7"]
            statement = (await http.get("/fhir/r4/metadata", headers=SPOOF)).json()
            assert statement["implementation"]["url"] == f"https://{PUBLIC_HOST}/fhir/r4"
        for server in (one, two):  # round robin: each process answered some of the four
            metrics = httpx.get(f"{server.base}/metrics").text
            assert 'ipt_requests_total{route="/v1/patients",method="GET",status="200"}' in metrics, server.base
