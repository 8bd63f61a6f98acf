"""Organization administration: users, passwords, integrations and the organization (org:admin)."""

from __future__ import annotations

import httpx

from tests.support.world import PASSWORD

NEW_PASSWORD = "a-brand-new-long-password"


def _with_etag(actor, etag: str) -> dict[str, str]:
    return {**actor.headers, "If-Match": etag}


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/token", data={"grant_type": "password", "username": email, "password": password})


def _new_user(**changes: object) -> dict:
    return {"email": "New.Person@Example.test", "display_name": "New Person", "roles": ["clinician"],
            "password": NEW_PASSWORD, **changes}


def _unique_email(world, name: str) -> str:
    return f"{name}-{world.org_id[-12:]}@example.test"


# users ---------------------------------------------------------------------------------------------
async def test_user_create_returns_201_with_etag_and_location_and_never_the_password(client, world):
    body = _new_user(email=_unique_email(world, "New.Person").upper())
    response = await client.post("/v1/users", json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/users/{user['id']}"
    assert user["email"] == body["email"].lower()
    assert user["organization_id"] == world.org_id
    assert user["roles"] == ["clinician"] and user["active"] is True
    assert "password" not in response.text and NEW_PASSWORD not in response.text and "argon2" not in response.text

    read = await client.get(response.headers["location"], headers=world.admin.headers)
    assert read.status_code == 200 and read.json() == user
    assert "password" not in read.text
    listed = await client.get("/v1/users", params={"limit": 200}, headers=world.admin.headers)
    assert "password" not in listed.text and "argon2" not in listed.text
    assert (await _login(client, body["email"], NEW_PASSWORD)).status_code == 200


async def test_user_create_with_a_taken_email_is_409_email_taken(client, world):
    response = await client.post("/v1/users", json=_new_user(email=world.clinician.email.upper()), headers=world.admin.headers)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "email_taken"


async def test_user_create_refuses_unknown_and_read_only_fields(client, world):
    for extra in ({"password_hash": "x"}, {"id": "u1"}, {"organization_id": world.org_id}, {"rolez": ["admin"]}):
        body = _new_user(email=_unique_email(world, "strict"), **extra)
        response = await client.post("/v1/users", json=body, headers=world.admin.headers)
        assert response.status_code == 422, (extra, response.text)
        assert response.json()["code"] == "validation_error"


async def test_users_list_is_paginated_in_creation_order_within_the_organization(client, world, other_world):
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/users", params=params, headers=world.admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        seen += [user["id"] for user in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [world.admin.id, world.supervisor.id, world.clinician.id, world.clinician2.id, world.researcher.id]
    assert seen == expected
    assert pages == 3


async def test_users_list_refuses_a_forged_cursor_with_422_invalid_cursor(client, world):
    response = await client.get("/v1/users", params={"cursor": "Zm9yZ2Vk"}, headers=world.admin.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


async def test_user_patch_needs_if_match_and_a_stale_one_changes_nothing(client, world):
    url = f"/v1/users/{world.clinician.id}"
    missing = await client.patch(url, json={"display_name": "Renamed"}, headers=world.admin.headers)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition_required"

    etag = (await client.get(url, headers=world.admin.headers)).headers["etag"]
    first = await client.patch(url, json={"display_name": "Renamed"}, headers=_with_etag(world.admin, etag))
    assert first.status_code == 200, first.text
    assert first.json()["display_name"] == "Renamed"
    assert first.headers["etag"] != etag

    stale = await client.patch(url, json={"display_name": "Lost update"}, headers=_with_etag(world.admin, etag))
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    now = await client.get(url, headers=world.admin.headers)
    assert now.json()["display_name"] == "Renamed"
    assert now.headers["etag"] == first.headers["etag"]


async def test_user_patch_to_a_taken_email_is_409_email_taken(client, world):
    url = f"/v1/users/{world.clinician.id}"
    etag = (await client.get(url, headers=world.admin.headers)).headers["etag"]
    response = await client.patch(url, json={"email": world.clinician2.email}, headers=_with_etag(world.admin, etag))
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_put_password_then_the_user_logs_in_with_the_new_one_only(client, world):
    url = f"/v1/users/{world.clinician.id}"
    missing = await client.put(f"{url}/password", json={"password": NEW_PASSWORD}, headers=world.admin.headers)
    assert missing.status_code == 428

    etag = (await client.get(url, headers=world.admin.headers)).headers["etag"]
    response = await client.put(f"{url}/password", json={"password": NEW_PASSWORD}, headers=_with_etag(world.admin, etag))
    assert response.status_code == 204, response.text
    assert response.headers["etag"] != etag

    assert (await _login(client, world.clinician.email, NEW_PASSWORD)).status_code == 200
    old = await _login(client, world.clinician.email, PASSWORD)
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


async def test_put_password_refuses_a_short_password(client, world):
    url = f"/v1/users/{world.clinician.id}"
    etag = (await client.get(url, headers=world.admin.headers)).headers["etag"]
    response = await client.put(f"{url}/password", json={"password": "short"}, headers=_with_etag(world.admin, etag))
    assert response.status_code == 422
    assert (await _login(client, world.clinician.email, PASSWORD)).status_code == 200


# integrations -----------------------------------------------------------------------------------------
async def test_integration_secret_is_shown_once_and_works(client, world):
    response = await client.post(
        "/v1/integrations", json={"name": "Lab", "scopes": ["clinical:read"]}, headers=world.admin.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["client_secret"]
    assert secret and created["client_id"] and created["scopes"] == ["clinical:read"]
    assert response.headers["location"] == f"/v1/integrations/{created['id']}"
    assert response.headers["etag"] == '"1"'

    read = await client.get(response.headers["location"], headers=world.admin.headers)
    assert read.status_code == 200
    assert "client_secret" not in read.json() and secret not in read.text and "secret_hash" not in read.json()
    listed = await client.get("/v1/integrations", headers=world.admin.headers)
    assert created["id"] in [i["id"] for i in listed.json()["data"]]
    assert secret not in listed.text and "client_secret" not in listed.text and "secret_hash" not in listed.text

    grant = await client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": created["client_id"], "client_secret": secret},
    )
    assert grant.status_code == 200, grant.text
    assert grant.json()["scope"] == "clinical:read"


async def test_integration_delete_needs_if_match_then_it_is_gone(client, world):
    url = f"/v1/integrations/{world.ehr.id}"
    missing = await client.delete(url, headers=world.admin.headers)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition_required"
    stale = await client.delete(url, headers=_with_etag(world.admin, '"99"'))
    assert stale.status_code == 412
    assert (await client.get(url, headers=world.admin.headers)).status_code == 200  # nothing changed

    etag = (await client.get(url, headers=world.admin.headers)).headers["etag"]
    assert (await client.delete(url, headers=_with_etag(world.admin, etag))).status_code == 204
    gone = await client.get(url, headers=world.admin.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    listed = await client.get("/v1/integrations", headers=world.admin.headers)
    assert world.ehr.id not in [i["id"] for i in listed.json()["data"]]
    assert (await client.delete(url, headers=_with_etag(world.admin, etag))).status_code == 404
    grant = await client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": world.ehr.client_id, "client_secret": world.ehr.client_secret},
    )
    assert grant.status_code == 401 and grant.json()["error"] == "invalid_client"


# organization ---------------------------------------------------------------------------------------
async def test_organization_read_and_data_use_agreement_update_with_if_match(client, world):
    read = await client.get("/v1/organization", headers=world.admin.headers)
    assert read.status_code == 200
    assert read.json()["id"] == world.org_id and read.json()["data_use_agreement"] is False
    etag = read.headers["etag"]

    missing = await client.patch("/v1/organization", json={"data_use_agreement": True}, headers=world.admin.headers)
    assert missing.status_code == 428

    changed = await client.patch(
        "/v1/organization", json={"data_use_agreement": True}, headers=_with_etag(world.admin, etag)
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data_use_agreement"] is True
    assert changed.headers["etag"] != etag

    stale = await client.patch(
        "/v1/organization", json={"data_use_agreement": False, "name": "Lost"}, headers=_with_etag(world.admin, etag)
    )
    assert stale.status_code == 412
    after = (await client.get("/v1/organization", headers=world.admin.headers)).json()
    assert after["data_use_agreement"] is True and after["name"] == read.json()["name"]


async def test_organization_patch_refuses_null_and_read_only_fields(client, world):
    etag = (await client.get("/v1/organization", headers=world.admin.headers)).headers["etag"]
    for body in ({"data_use_agreement": None}, {"id": "x"}, {"version": 7}):
        response = await client.patch("/v1/organization", json=body, headers=_with_etag(world.admin, etag))
        assert response.status_code == 422, (body, response.text)


# tenancy ---------------------------------------------------------------------------------------------
async def test_another_organizations_admin_gets_404_for_its_users_and_integrations(client, world, other_world):
    intruder = other_world.admin
    user_url, integration_url = f"/v1/users/{world.clinician.id}", f"/v1/integrations/{world.ehr.id}"
    answers = [
        await client.get(user_url, headers=intruder.headers),
        await client.patch(user_url, json={"active": False}, headers=_with_etag(intruder, '"1"')),
        await client.put(f"{user_url}/password", json={"password": NEW_PASSWORD}, headers=_with_etag(intruder, '"1"')),
        await client.get(integration_url, headers=intruder.headers),
        await client.delete(integration_url, headers=_with_etag(intruder, '"1"')),
    ]
    for response in answers:
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"
        assert world.clinician.email not in response.text

    listed = await client.get("/v1/users", params={"limit": 200}, headers=intruder.headers)
    assert world.clinician.id not in listed.text
    # Nothing of the first organization changed.
    assert (await _login(client, world.clinician.email, PASSWORD)).status_code == 200
    assert (await client.get("/v1/me", headers=world.ehr.headers)).status_code == 200


async def test_unknown_user_id_is_404_not_a_server_error(client, world):
    for user_id in ("no-such-user", "x" * 300):
        response = await client.get(f"/v1/users/{user_id}", headers=world.admin.headers)
        assert response.status_code == 404, (user_id, response.text)
        assert response.json()["code"] == "not_found"


async def test_user_id_with_a_nul_character_is_a_client_error_not_a_server_error(client, world, backend):
    # SQLite stores NUL, so it simply finds no such user; PostgreSQL refuses the value: a 400, never a 500.
    response = await client.get("/v1/users/a%00b", headers=world.admin.headers)
    expected = (404, "not_found") if backend == "sqlite" else (400, "bad_request")
    assert (response.status_code, response.json()["code"]) == expected, response.text
    assert "psycopg" not in response.text and "SELECT" not in response.text
