"""The OAuth 2.0 token endpoint, exercised over HTTP: every grant, rotation, reuse, and refusals."""

from __future__ import annotations

import httpx

from tests.support.world import PASSWORD

TOKEN = "/v1/auth/token"


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def _password_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    return await client.post(TOKEN, data={"grant_type": "password", "username": email, "password": password, **extra})


async def _refresh(client: httpx.AsyncClient, refresh_token: str, **extra: str) -> httpx.Response:
    return await client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra})


async def _deactivate(client: httpx.AsyncClient, world, user_id: str) -> None:
    current = await client.get(f"/v1/users/{user_id}", headers=world.admin.headers)
    headers = {**world.admin.headers, "If-Match": current.headers["etag"]}
    response = await client.patch(f"/v1/users/{user_id}", json={"active": False}, headers=headers)
    assert response.status_code == 200, response.text


# password -------------------------------------------------------------------------------------
async def test_password_grant_returns_access_and_refresh_tokens_and_the_access_token_works(client, world):
    response = await _password_login(client, world.clinician.email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["scope"] == "clinical:read clinical:write"
    assert body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"

    me = await client.get("/v1/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "type": "user",
        "id": world.clinician.id,
        "organization_id": world.org_id,
        "roles": ["clinician"],
        "scopes": ["clinical:read", "clinical:write"],
    }


async def test_password_grant_matches_the_email_case_insensitively(client, world):
    response = await _password_login(client, world.clinician.email.upper())
    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_account_get_the_same_invalid_grant_answer(client, world):
    wrong_password = await _password_login(client, world.clinician.email, "not-the-password-at-all")
    unknown_account = await _password_login(client, "nobody-at-all@example.test")
    assert wrong_password.status_code == unknown_account.status_code == 400
    assert wrong_password.json() == unknown_account.json()
    assert wrong_password.json()["error"] == "invalid_grant"
    assert "access_token" not in wrong_password.text


async def test_password_grant_scope_narrows_the_token(client, world):
    response = await _password_login(client, world.clinician.email, scope="clinical:read")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "clinical:read"
    headers = _bearer(response.json()["access_token"])
    assert (await client.get("/v1/me", headers=headers)).json()["scopes"] == ["clinical:read"]
    refused = await client.post("/v1/patients", json={"display_name": "P"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


async def test_password_grant_asking_for_a_scope_the_roles_do_not_grant_is_invalid_scope(client, world):
    response = await _password_login(client, world.clinician.email, scope="clinical:read org:admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


# refresh ---------------------------------------------------------------------------------------
async def test_refresh_token_rotates_and_each_one_works_only_once(client, world):
    first = (await _password_login(client, world.clinician.email)).json()
    second = await _refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    me = await client.get("/v1/me", headers=_bearer(rotated["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == world.clinician.id

    third = await _refresh(client, rotated["refresh_token"])  # the new one works once ...
    assert third.status_code == 200, third.text
    again = await _refresh(client, rotated["refresh_token"])  # ... and not twice
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(client, world):
    first = (await _password_login(client, world.clinician.email)).json()
    newest = (await _refresh(client, first["refresh_token"])).json()["refresh_token"]
    other_login = (await _password_login(client, world.clinician.email)).json()["refresh_token"]

    reuse = await _refresh(client, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"

    # The family's newest token was never used, yet it is dead now: the family may be stolen.
    after = await _refresh(client, newest)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    # Another log-in (another family) is untouched.
    assert (await _refresh(client, other_login)).status_code == 200


async def test_forged_or_malformed_refresh_tokens_are_invalid_grant(client, world):
    real = (await _password_login(client, world.clinician.email)).json()["refresh_token"]
    token_id = real.partition(".")[0]
    for forged in (f"{token_id}.not-the-secret", "garbage", ".", real + "x", "a" * 5000):
        response = await _refresh(client, forged)
        assert response.status_code == 400, (forged[:20], response.text)
        assert response.json()["error"] == "invalid_grant"
    assert (await _refresh(client, real)).status_code == 200  # the failed guesses did not spend it


async def test_token_fields_with_a_nul_character_are_invalid_request_not_a_server_error(client, world):
    # PostgreSQL cannot compare text holding NUL: such a field must be refused before any query.
    forms = (
        {"grant_type": "refresh_token", "refresh_token": "\x00.abc"},
        {"grant_type": "password", "username": "a\x00@example.test", "password": PASSWORD},
        {"grant_type": "client_credentials", "client_id": "ipt_\x00", "client_secret": "x"},
    )
    for form in forms:
        response = await client.post(TOKEN, data=form)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


async def test_refresh_cannot_widen_scope_beyond_the_roles(client, world):
    refresh_token = (await _password_login(client, world.clinician.email)).json()["refresh_token"]
    response = await _refresh(client, refresh_token, scope="org:admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_refresh_without_scope_keeps_the_scope_of_a_narrowed_login(client, world):
    # RFC 6749, 6: an omitted scope on refresh means the scope originally granted, never more.
    login = (await _password_login(client, world.clinician.email, scope="clinical:read")).json()
    refreshed = await _refresh(client, login["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "clinical:read"


# client credentials ----------------------------------------------------------------------------
async def test_client_credentials_grant_with_form_fields_gives_an_integration_token(client, world):
    response = await client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": world.ehr.client_secret},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "clinical:read clinical:write"
    assert "refresh_token" not in body or body["refresh_token"] is None
    me = (await client.get("/v1/me", headers=_bearer(body["access_token"]))).json()
    assert me["type"] == "integration" and me["id"] == world.ehr.id and me["organization_id"] == world.org_id


async def test_client_credentials_grant_with_http_basic_gives_an_integration_token(client, world):
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(world.ehr.client_id, world.ehr.client_secret)
    )
    assert response.status_code == 200, response.text
    me = await client.get("/v1/me", headers=_bearer(response.json()["access_token"]))
    assert me.json()["id"] == world.ehr.id


async def test_client_credentials_with_a_wrong_secret_is_invalid_client(client, world):
    for kwargs in (
        {"data": {"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": "wrong"}},
        {"data": {"grant_type": "client_credentials"}, "auth": (world.ehr.client_id, "wrong")},
        {"data": {"grant_type": "client_credentials", "client_id": "ipt_nobody", "client_secret": "wrong"}},
    ):
        response = await client.post(TOKEN, **kwargs)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_client_credentials_scope_narrows_and_more_than_granted_is_invalid_scope(client, world):
    form = {"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": world.ehr.client_secret}
    narrowed = await client.post(TOKEN, data={**form, "scope": "clinical:read"})
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "clinical:read"
    headers = _bearer(narrowed.json()["access_token"])
    assert (await client.get("/v1/patients", headers=headers)).status_code == 200
    assert (await client.post("/v1/patients", json={"display_name": "P"}, headers=headers)).status_code == 403

    widened = await client.post(TOKEN, data={**form, "scope": "clinical:read org:admin"})
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


# refusals ----------------------------------------------------------------------------------------
async def test_unsupported_grant_type_is_refused(client, world):
    response = await client.post(TOKEN, data={"grant_type": "authorization_code", "code": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_token_request_that_is_not_form_encoded_is_invalid_request(client, world):
    body = {"grant_type": "password", "username": world.clinician.email, "password": PASSWORD}
    response = await client.post(TOKEN, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_grant_missing_its_fields_is_invalid_request(client, world):
    response = await client.post(TOKEN, data={"grant_type": "password", "username": world.clinician.email})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_deactivated_user_can_neither_log_in_nor_refresh(client, world):
    refresh_token = (await _password_login(client, world.clinician.email)).json()["refresh_token"]
    await _deactivate(client, world, world.clinician.id)

    login = await _password_login(client, world.clinician.email)
    assert login.status_code == 400
    assert login.json()["error"] == "invalid_grant"
    refresh = await _refresh(client, refresh_token)
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"
