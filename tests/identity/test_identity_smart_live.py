"""SMART Backend Services over real HTTP: authlib's client, replay across processes, keys fetched from a JWKS URL."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from app.core.security import InvalidAssertion
from app.identity import assertions
from app.main import create_app
from tests.conftest import test_settings
from tests.support.live import live_server
from tests.support.smart import Assertion, ClientKey, jwks, token_form
from tests.support.world import make_world


async def _register(client, world, **body) -> dict:
    response = await client.post("/v1/integrations", json={"name": "EHR", "scopes": ["clinical:read"], **body},
                                 headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


@contextmanager
def key_server(document: dict) -> Iterator[dict]:
    """A JWKS URL on loopback serving ``state["jwks"]`` (changeable), counting its requests."""
    state = {"jwks": document, "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(state["jwks"]).encode()
            state["hits"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


async def test_authlibs_private_key_jwt_client_gets_a_token_from_a_live_server(app, client, world, live_url):
    key = ClientKey.rsa()
    integration = await _register(client, world, jwks=jwks(key))
    token_url = f"{live_url}/v1/auth/token"
    # A client nobody here wrote: authlib signs the assertion (RFC 7523) with joserfc. Its default
    # lifetime is an hour, which SMART forbids: the client says five minutes, as SMART clients do.
    auth = PrivateKeyJWT(token_url, alg="RS384", headers={"kid": key.kid}, claims={"exp": int(time.time()) + 300})
    with OAuth2Session(integration["client_id"], key.key, token_endpoint_auth_method=auth) as oauth:
        token = oauth.fetch_token(token_url, grant_type="client_credentials", scope="system/*.rs")
        assert token["scope"] == "system/*.rs"
        me = oauth.get(f"{live_url}/v1/me")
        assert me.status_code == 200 and me.json()["id"] == integration["id"]
        assert oauth.get(f"{live_url}/fhir/r4/metadata").status_code == 200

    hour = PrivateKeyJWT(token_url, alg="RS384", headers={"kid": key.kid})  # authlib's default exp: an hour ahead
    with OAuth2Session(integration["client_id"], key.key, token_endpoint_auth_method=hour) as oauth, \
            pytest.raises(Exception, match="invalid_client"):
        oauth.fetch_token(token_url, grant_type="client_credentials", scope="system/*.rs")


async def test_an_assertion_is_accepted_by_one_process_only_whichever_it_reaches(app, client, world, database_url):
    key = ClientKey.ec()
    integration = await _register(client, world, jwks=jwks(key))
    secret = app.state.settings.secret_key
    with ExitStack() as stack, ThreadPoolExecutor(4) as pool:
        bases = list(pool.map(stack.enter_context, [live_server(database_url, secret) for _ in range(2)]))
        urls = [f"{base}/v1/auth/token" for base in bases]
        for _ in range(3):
            # One assertion whose aud names both processes (as one public URL would behind a balancer),
            # sent twice to each at once.
            assertion = Assertion(integration["client_id"], urls[0], {"aud": urls}).signed(key)
            post = lambda url: httpx.post(url, data=token_form(assertion), timeout=20)
            answers = await asyncio.to_thread(lambda: list(pool.map(post, urls * 2)))
            assert sorted(a.status_code for a in answers) == [200, 401, 401, 401], [a.text for a in answers]
            assert all(a.json()["error"] == "invalid_client" for a in answers if a.status_code == 401)


@pytest.fixture
async def private_urls_app(database_url):
    """An app that may fetch from loopback (IPT_WEBHOOK_ALLOW_PRIVATE), as a test's JWKS server is there."""
    application = create_app(test_settings(database_url, webhook_allow_private=True))
    yield application
    await application.state.engine.dispose()


async def test_keys_come_from_the_jwks_url_cached_and_refetched_when_the_client_rotates(private_urls_app, monkeypatch):
    app = private_urls_app
    world = await make_world(app)
    old, new = ClientKey.rsa(), ClientKey.ec()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with key_server(jwks(old)) as keys:
            integration = await _register(client, world, jwks_url=keys["url"])
            assert integration["jwks_url"] == keys["url"] and integration["client_secret"] is None
            claims = Assertion(integration["client_id"], "http://testserver/v1/auth/token")
            for _ in range(3):
                response = await client.post("/v1/auth/token", data=token_form(claims.signed(old)))
                assert response.status_code == 200, response.text
            assert keys["hits"] == 1  # fetched once, then cached

            keys["jwks"] = jwks(new)  # the client rotates: the new kid is unknown to the cache
            refused = await client.post("/v1/auth/token", data=token_form(claims.signed(new)))
            assert refused.status_code == 401 and keys["hits"] == 1  # not refetched within 30 s of the last fetch
            monkeypatch.setattr(assertions, "REFETCH_AFTER_SECONDS", 0.0)
            response = await client.post("/v1/auth/token", data=token_form(claims.signed(new)))
            assert response.status_code == 200, response.text
            assert keys["hits"] == 2
            stale = await client.post("/v1/auth/token", data=token_form(claims.signed(old)))
            assert stale.status_code == 401  # the retired key no longer verifies

        # The key server is gone: a kid not cached cannot be had, and that is invalid_client, not a 500.
        third = ClientKey.rsa()
        response = await client.post("/v1/auth/token", data=token_form(claims.signed(third)))
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


async def test_a_jwks_url_that_resolves_to_a_private_address_is_not_fetched():
    with key_server(jwks(key := ClientKey.rsa())) as keys:
        with pytest.raises(InvalidAssertion, match="private"):
            await assertions.KeySets(allow_private=False).key(keys["url"], key.kid)
        assert keys["hits"] == 0
        assert (await assertions.KeySets(allow_private=True).key(keys["url"], key.kid))["kid"] == key.kid


@pytest.mark.parametrize("document", [{"keys": "nope"}, {"keys": [{"kty": "RSA", "kid": "x", "d": "private"}]}, []])
async def test_an_unusable_key_set_at_the_url_refuses_the_assertion(document):
    with key_server(document) as keys, pytest.raises(InvalidAssertion, match="key set"):
        await assertions.KeySets(allow_private=True).key(keys["url"], "x")
