"""What roles and scopes reach: missing scope is 403, and role changes bite at the next request."""

from __future__ import annotations


async def _change_roles(client, world, user_id: str, roles: list[str]) -> None:
    current = await client.get(f"/v1/users/{user_id}", headers=world.admin.headers)
    headers = {**world.admin.headers, "If-Match": current.headers["etag"]}
    response = await client.patch(f"/v1/users/{user_id}", json={"roles": roles}, headers=headers)
    assert response.status_code == 200, response.text


def _assert_forbidden(response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "forbidden"


async def test_researcher_is_forbidden_from_patients(client, world):
    _assert_forbidden(await client.get("/v1/patients", headers=world.researcher.headers))
    _assert_forbidden(await client.post("/v1/patients", json={"display_name": "P"}, headers=world.researcher.headers))


async def test_admin_is_forbidden_from_patients(client, world):
    _assert_forbidden(await client.get("/v1/patients", headers=world.admin.headers))
    _assert_forbidden(await client.post("/v1/patients", json={"display_name": "P"}, headers=world.admin.headers))


async def test_clinician_is_forbidden_from_organization_administration(client, world):
    _assert_forbidden(await client.get("/v1/users", headers=world.clinician.headers))
    _assert_forbidden(await client.get(f"/v1/users/{world.clinician.id}", headers=world.clinician.headers))
    _assert_forbidden(await client.get("/v1/organization", headers=world.clinician.headers))
    _assert_forbidden(
        await client.post("/v1/integrations", json={"name": "X", "scopes": ["org:admin"]}, headers=world.clinician.headers)
    )


async def test_integration_is_forbidden_from_organization_administration(client, world):
    _assert_forbidden(await client.get("/v1/users", headers=world.ehr.headers))


async def test_me_shows_a_users_type_roles_and_scopes(client, world):
    response = await client.get("/v1/me", headers=world.admin.headers)
    assert response.status_code == 200
    assert response.json() == {
        "type": "user",
        "id": world.admin.id,
        "organization_id": world.org_id,
        "roles": ["admin"],
        "scopes": ["audit:read", "org:admin", "webhooks:manage"],
    }
    supervisor = (await client.get("/v1/me", headers=world.supervisor.headers)).json()
    assert sorted(supervisor["roles"]) == ["clinician", "supervisor"]
    assert supervisor["scopes"] == ["clinical:read", "clinical:write"]


async def test_me_shows_an_integrations_type_and_granted_scopes(client, world):
    response = await client.get("/v1/me", headers=world.ehr.headers)
    assert response.status_code == 200
    assert response.json() == {
        "type": "integration",
        "id": world.ehr.id,
        "organization_id": world.org_id,
        "roles": [],
        "scopes": ["clinical:read", "clinical:write"],
    }


async def test_role_removed_from_a_user_takes_effect_at_the_next_request(client, world):
    assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
    await _change_roles(client, world, world.clinician.id, ["researcher"])

    _assert_forbidden(await client.get("/v1/patients", headers=world.clinician.headers))  # the same, unexpired token
    me = (await client.get("/v1/me", headers=world.clinician.headers)).json()
    assert me["roles"] == ["researcher"]
    assert me["scopes"] == []  # the token's scopes, cut down to what the roles still grant


async def test_role_added_to_a_user_does_not_widen_a_token_already_issued(client, world):
    await _change_roles(client, world, world.clinician.id, ["admin", "clinician"])
    # The old token was issued for clinical scopes only; admin powers need a new log-in.
    _assert_forbidden(await client.get("/v1/users", headers=world.clinician.headers))
    assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
