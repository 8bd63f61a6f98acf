"""SMART Backend Services: key-set integrations, signed client assertions, system scopes, discovery."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app.identity import smart
from tests.support.smart import Assertion as Claims
from tests.support.smart import ClientKey, forged, jwks, token_form

TOKEN = "/v1/auth/token"
TOKEN_URL = "http://testserver/v1/auth/token"  # the in-process client's base URL


async def _register(client, world, **body) -> dict:
    response = await client.post("/v1/integrations", json={"name": "EHR bulk", "scopes": ["clinical:read", "clinical:write"],
                                                           **body}, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _audit_of(app, response) -> dict:
    async with app.state.engine.connect() as db:
        rows = (await db.execute(sa.text("SELECT * FROM audit_event WHERE request_id = :r"),
                                 {"r": response.headers["x-request-id"]})).mappings().all()
    assert len(rows) == 1
    return dict(rows[0])


@pytest.fixture
async def registered(client, world):
    """An integration registered with an RSA and an EC key inline; (integration, rsa key, ec key)."""
    rsa, ec = ClientKey.rsa(), ClientKey.ec()
    return await _register(client, world, jwks=jwks(rsa, ec)), rsa, ec


# registration --------------------------------------------------------------------------------
async def test_an_integration_registered_with_a_key_set_gets_no_secret_and_shows_its_public_keys(client, world, registered):
    integration, rsa, ec = registered
    assert integration["client_secret"] is None
    assert [key["kid"] for key in integration["jwks"]["keys"]] == [rsa.kid, ec.kid]
    assert integration["jwks_url"] is None
    read = await client.get(f"/v1/integrations/{integration['id']}", headers=world.admin.headers)
    assert read.json()["jwks"] == integration["jwks"]
    # No secret exists to guess: the secret grant refuses it whatever is sent.
    form = {"grant_type": "client_credentials", "client_id": integration["client_id"], "client_secret": ""}
    assert (await client.post(TOKEN, data=form | {"client_secret": "x" * 43})).status_code == 401


def _private(key: ClientKey) -> dict:
    return {**key.key.as_dict(private=True), "kid": key.kid}


@pytest.mark.filterwarnings("ignore:Key size should be:UserWarning")  # the 1024-bit key is the point
@pytest.mark.parametrize(("keys", "needle"), [
    (lambda: {"keys": [_private(ClientKey.rsa())]}, "private"),
    (lambda: {"keys": [{**ClientKey.rsa(1024).public()}]}, "2048"),
    (lambda: {"keys": [{"kty": "EC", "kid": "p256", "crv": "P-256", "x": "AA", "y": "AA"}]}, "crv"),
    (lambda: (lambda k: {"keys": [k.public(), k.public()]})(ClientKey.ec()), "unique"),
    (lambda: {"keys": [{**ClientKey.rsa().public(), "alg": "RS256"}]}, "alg"),
    (lambda: {"keys": [{k: v for k, v in ClientKey.rsa().public().items() if k != "kid"}]}, "kid"),
    (lambda: {"keys": []}, "keys"),
    (lambda: {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}, "kty"),
])
async def test_a_key_set_that_cannot_verify_assertions_safely_is_refused_at_registration(client, world, keys, needle):
    response = await client.post("/v1/integrations", json={"name": "EHR", "scopes": ["clinical:read"], "jwks": keys()},
                                 headers=world.admin.headers)
    assert response.status_code in (400, 422), response.text
    assert needle in response.text
    assert "client_secret" not in response.text


async def test_registration_takes_a_jwks_or_a_jwks_url_not_both_and_refuses_a_private_jwks_url(client, world):
    both = {"name": "EHR", "scopes": ["clinical:read"], "jwks": jwks(ClientKey.ec()), "jwks_url": "https://keys.example.org/jwks"}
    response = await client.post("/v1/integrations", json=both, headers=world.admin.headers)
    assert response.status_code in (400, 422) and "not both" in response.text
    for url in ("http://127.0.0.1:9/jwks.json", "http://10.1.2.3/jwks.json", "http://169.254.169.254/latest"):
        response = await client.post("/v1/integrations", json={"name": "EHR", "scopes": ["clinical:read"], "jwks_url": url},
                                     headers=world.admin.headers)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["jwks_url"]


# the token endpoint --------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["rsa", "ec"])
async def test_a_signed_assertion_gets_a_token_with_the_system_scope_granted(client, world, registered, which):
    integration, rsa, ec = registered
    key = rsa if which == "rsa" else ec
    assertion = Claims(integration["client_id"], TOKEN_URL).signed(key)
    response = await client.post(TOKEN, data=token_form(assertion, "system/*.rs"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "system/*.rs" and body["token_type"] == "bearer" and "refresh_token" not in body
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = (await client.get("/v1/me", headers=headers)).json()
    assert (me["type"], me["id"], me["scopes"]) == ("integration", integration["id"], ["clinical:read"])
    assert (await client.get("/v1/courses", headers=headers)).status_code == 200
    refused = await client.post("/v1/patients", json={"display_name": "P"}, headers=headers)
    assert refused.status_code == 403  # read scopes only: no write


async def test_the_token_endpoint_grants_the_system_scopes_it_can_and_answers_what_it_granted(client, world, app):
    integration = await _register(client, world, jwks=jwks(key := ClientKey.ec()), scopes=["clinical:read"])
    claims = Claims(integration["client_id"], TOKEN_URL)
    cases = {
        "system/Patient.rs system/EpisodeOfCare.read": ("system/Patient.rs system/EpisodeOfCare.read", ["clinical:read"]),
        # A write it does not hold, and a type this service does not serve, are left out of the grant.
        "system/Observation.rs system/QuestionnaireResponse.c system/MedicationRequest.rs": ("system/Observation.rs", ["clinical:read"]),
    }
    for requested, (granted, own) in cases.items():
        response = await client.post(TOKEN, data=token_form(claims.signed(key), requested))
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == granted
        assert app.state.secrets.decode_access_token(response.json()["access_token"]).scopes == frozenset(own)
    for requested in ("system/QuestionnaireResponse.c", "org:admin", "system/Patient.xyz", "patient/*.rs"):
        response = await client.post(TOKEN, data=token_form(claims.signed(key), requested))
        assert (response.status_code, response.json()["error"]) == (400, "invalid_scope"), requested


async def test_a_secret_integration_may_ask_for_system_scopes_too(client, world):
    form = {"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": world.ehr.client_secret,
            "scope": "system/*.cruds"}
    response = await client.post(TOKEN, data=form)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/*.cruds"


def _refusals(client_id: str, rsa: ClientKey, ec: ClientKey) -> dict[str, str]:
    """Every assertion that must be refused, by what is wrong with it."""
    now = int(time.time())
    claims = Claims(client_id, TOKEN_URL)
    other = ClientKey.rsa()
    other.kid = rsa.kid  # another key claiming the registered kid
    unsigned = Claims(client_id, TOKEN_URL).standard_claims()
    public_pem = rsa.key.as_pem(private=False)
    return {
        "malformed": "not.a.jwt",
        "garbage": "eyJhbGciOiJSUzM4NCJ9.%%%.abc",
        "expired": Claims(client_id, TOKEN_URL, {"exp": now - 120}).signed(rsa),
        "exp more than five minutes ahead": Claims(client_id, TOKEN_URL, {"exp": now + 3600}).signed(rsa),
        "no exp": Claims(client_id, TOKEN_URL, {"exp": None}).signed(rsa),
        "wrong audience": Claims(client_id, "https://other.example.org/token").signed(rsa),
        "no audience": Claims(client_id, TOKEN_URL, {"aud": None}).signed(rsa),
        "iss is not sub": Claims(client_id, TOKEN_URL, {"sub": "someone-else"}).signed(rsa),
        "unknown client": Claims("ipt_nobody", TOKEN_URL).signed(rsa),
        "no jti": Claims(client_id, TOKEN_URL, {"jti": None}).signed(rsa),
        "jti too long": Claims(client_id, TOKEN_URL, {"jti": "j" * 256}).signed(rsa),
        "issued in the future": Claims(client_id, TOKEN_URL, {"iat": now + 600}).signed(rsa),
        "wrong key": claims.signed(other),
        "unknown kid": Claims(client_id, TOKEN_URL, header={"kid": "not-registered"}).signed(rsa),
        "no kid": forged({"alg": "RS384"}, unsigned),
        "alg none": forged({"alg": "none", "kid": rsa.kid}, unsigned),
        "HS256 keyed with the public key": forged({"alg": "HS256", "kid": rsa.kid}, unsigned, public_pem),
        "RS256": Claims(client_id, TOKEN_URL, header={"alg": "RS256"}).signed(rsa),
        "an RSA kid under ES384": forged({"alg": "ES384", "kid": rsa.kid}, unsigned, b"x"),
        "an EC key's signature under the RSA kid": Claims(client_id, TOKEN_URL, header={"kid": rsa.kid}).signed(ec),
    }


async def test_every_bad_assertion_is_invalid_client_and_audited_with_its_reason(app, client, world, registered):
    integration, rsa, ec = registered
    told = {}
    for case, assertion in _refusals(integration["client_id"], rsa, ec).items():
        response = await client.post(TOKEN, data=token_form(assertion))
        told[case] = response.json().get("error_description")
        assert response.status_code == 401, (case, response.text)
        assert response.json()["error"] == "invalid_client", case
        assert response.headers["cache-control"] == "no-store"
        event = await _audit_of(app, response)
        assert (event["action"], event["outcome"]) == ("login_failed", 401), case
        assert assertion not in str(event), case  # never the assertion itself
        reason = event["details"]["reason"] if isinstance(event["details"], dict) else event["details"]
        assert reason, case
        if case not in ("unknown client", "malformed", "garbage"):
            assert event["actor_id"] == integration["id"], case
    # Whether the client exists, which kid it has and what its keys are: the caller learns none of it.
    alike = ("unknown client", "wrong key", "unknown kid", "an EC key's signature under the RSA kid")
    assert len({told[case] for case in alike}) == 1, {case: told[case] for case in alike}


async def test_an_assertion_works_once_a_replay_is_refused(app, client, world, registered):
    integration, rsa, _ = registered
    assertion = Claims(integration["client_id"], TOKEN_URL).signed(rsa)
    assert (await client.post(TOKEN, data=token_form(assertion))).status_code == 200
    replay = await client.post(TOKEN, data=token_form(assertion))
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    assert "already used" in replay.json()["error_description"]
    assert "already used" in str((await _audit_of(app, replay))["details"])


async def test_a_client_id_that_contradicts_the_assertion_or_a_secret_beside_it_is_refused(client, world, registered):
    integration, rsa, _ = registered
    claims = Claims(integration["client_id"], TOKEN_URL)
    response = await client.post(TOKEN, data=token_form(claims.signed(rsa), client_id=world.ehr.client_id))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    response = await client.post(TOKEN, data=token_form(claims.signed(rsa), client_id=integration["client_id"]))
    assert response.status_code == 200, response.text
    response = await client.post(TOKEN, data=token_form(claims.signed(rsa), client_secret="also-a-secret"))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    response = await client.post(TOKEN, data=token_form(claims.signed(rsa), client_assertion_type="urn:other"))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


async def test_a_revoked_key_set_integration_can_no_longer_get_tokens(client, world, registered):
    integration, rsa, _ = registered
    etag = (await client.get(f"/v1/integrations/{integration['id']}", headers=world.admin.headers)).headers["etag"]
    deleted = await client.delete(f"/v1/integrations/{integration['id']}", headers={**world.admin.headers, "If-Match": etag})
    assert deleted.status_code == 204
    response = await client.post(TOKEN, data=token_form(Claims(integration["client_id"], TOKEN_URL).signed(rsa)))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


# scopes and discovery --------------------------------------------------------------------------
@pytest.mark.parametrize(("scope", "own"), [
    ("system/*.rs", {"clinical:read"}), ("system/*.read", {"clinical:read"}), ("system/Patient.r", {"clinical:read"}),
    ("system/QuestionnaireResponse.c", {"clinical:write"}), ("system/*.write", {"clinical:write"}),
    ("system/*.cruds", {"clinical:read", "clinical:write"}), ("system/*.*", {"clinical:read", "clinical:write"}),
    ("system/MedicationRequest.rs", set()),
])
def test_system_scopes_map_onto_the_own_scopes(scope, own):
    assert smart.own_scopes_for(scope) == frozenset(own)


@pytest.mark.parametrize("scope", ["system/*.", "system/*.sr", "system/patient.rs", "user/*.rs", "patient/*.read",
                                   "system/*.rs?category=x", "clinical:read", "launch"])
def test_what_is_not_a_system_scope_maps_to_nothing(scope):
    assert smart.own_scopes_for(scope) is None


@pytest.mark.parametrize("path", ["/.well-known/smart-configuration", "/fhir/r4/.well-known/smart-configuration"])
async def test_smart_configuration_describes_backend_services(client, path):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["token_endpoint"] == TOKEN_URL
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert set(body["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert "client_credentials" in body["grant_types_supported"]
    assert {"client-confidential-asymmetric", "permission-v2"} <= set(body["capabilities"])
    assert "system/*.rs" in body["scopes_supported"]
    for scope in body["scopes_supported"]:  # every scope advertised is one the token endpoint understands
        assert scope in smart.SCOPES_SUPPORTED or smart.own_scopes_for(scope) is None


async def _patch(client, world, integration_id: str, body: dict, expect: int = 200):
    etag = (await client.get(f"/v1/integrations/{integration_id}", headers=world.admin.headers)).headers["etag"]
    response = await client.patch(f"/v1/integrations/{integration_id}", json=body,
                                  headers={**world.admin.headers, "If-Match": etag})
    assert response.status_code == expect, response.text
    return response


async def test_an_admin_rotates_an_integrations_keys_and_the_old_key_stops_working(client, world, registered):
    integration, rsa, _ = registered
    claims = Claims(integration["client_id"], TOKEN_URL)
    fresh = ClientKey.ec()
    rotated = (await _patch(client, world, integration["id"], {"jwks": jwks(fresh)})).json()
    assert [k["kid"] for k in rotated["jwks"]["keys"]] == [fresh.kid] and rotated["version"] == integration["version"] + 1
    assert (await client.post(TOKEN, data=token_form(claims.signed(rsa)))).status_code == 401
    assert (await client.post(TOKEN, data=token_form(claims.signed(fresh)))).status_code == 200
    # If-Match is required and must be current; a private JWKS URL and both sources at once are refused.
    stale = await client.patch(f"/v1/integrations/{integration['id']}", json={"name": "x"},
                               headers={**world.admin.headers, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert (await client.patch(f"/v1/integrations/{integration['id']}", json={"name": "x"},
                               headers=world.admin.headers)).status_code == 428
    await _patch(client, world, integration["id"], {"jwks_url": "http://127.0.0.1:9/keys"}, expect=422)
    await _patch(client, world, integration["id"], {"jwks": jwks(fresh), "jwks_url": "https://keys.example.org/k"},
                 expect=422)


async def test_moving_a_secret_integration_to_keys_ends_its_secret_and_narrowed_scopes_apply_to_its_tokens(client, world):
    form = {"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": world.ehr.client_secret}
    token = (await client.post(TOKEN, data=form)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/me", headers=headers)).json()["scopes"] == ["clinical:read", "clinical:write"]
    key = ClientKey.rsa()
    moved = (await _patch(client, world, world.ehr.id, {"jwks": jwks(key), "scopes": ["clinical:read"]})).json()
    assert moved["scopes"] == ["clinical:read"]
    assert (await client.post(TOKEN, data=form)).status_code == 401  # the secret is gone
    assert (await client.get("/v1/me", headers=headers)).json()["scopes"] == ["clinical:read"]  # at its next request
    signed = Claims(world.ehr.client_id, TOKEN_URL).signed(key)
    assert (await client.post(TOKEN, data=token_form(signed, "system/*.rs"))).status_code == 200
