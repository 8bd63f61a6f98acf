"""Bearer tokens: only well-formed, correctly signed, current tokens of live accounts get in."""

from __future__ import annotations

import ast
import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from jose import jwt

APP_DIR = Path(__file__).resolve().parents[2] / "app"
_DROP = object()


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(app, world, **changes: object) -> dict:
    """Every claim the app requires, for the world's clinician; ``_DROP`` removes one."""
    settings = app.state.settings
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": world.clinician.id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "org": world.org_id,
        "scope": "clinical:read clinical:write",
        "kind": "user",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not _DROP}


def _sign(app, claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or app.state.settings.secret_key, algorithm=algorithm)


def _alg_none(app, world) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(app, world))}."


def _other_key(app, world) -> str:
    return _sign(app, _claims(app, world), key="another-key-" + "x" * 40)


def _other_algorithm(app, world) -> str:
    return _sign(app, _claims(app, world), algorithm="HS512")  # the right key, but not the pinned algorithm


def _tampered(app, world) -> str:
    header, _, signature = _sign(app, _claims(app, world)).split(".")
    forged = _claims(app, world, sub=world.admin.id, scope="org:admin clinical:read clinical:write")
    return f"{header}.{_b64(forged)}.{signature}"


def _expired(app, world) -> str:
    now = int(time.time())
    return _sign(app, _claims(app, world, iat=now - 3600, nbf=now - 3600, exp=now - 10))


def _not_yet_valid(app, world) -> str:
    return _sign(app, _claims(app, world, nbf=int(time.time()) + 600))


def _wrong_audience(app, world) -> str:
    return _sign(app, _claims(app, world, aud="some-other-api"))


def _wrong_issuer(app, world) -> str:
    return _sign(app, _claims(app, world, iss="https://evil.example"))


def _unknown_kind(app, world) -> str:
    return _sign(app, _claims(app, world, kind="superuser"))


def _oversized(app, world) -> str:
    return _sign(app, _claims(app, world, padding="x" * 5000))  # validly signed, but far too large


def _other_org(app, world) -> str:
    return _sign(app, _claims(app, world, org=str(uuid.uuid4())))


def _garbage(app, world) -> str:
    return "not-a-jwt"


def _header_not_an_object(app, world) -> str:
    return f"{_b64([1, 2])}.{_b64(_claims(app, world))}.abc"


BAD_TOKENS: dict[str, Callable] = {
    "alg_none": _alg_none,
    "hs256_signed_with_another_key": _other_key,
    "another_algorithm_hs512": _other_algorithm,
    "tampered_payload": _tampered,
    "expired": _expired,
    "nbf_in_the_future": _not_yet_valid,
    "wrong_aud": _wrong_audience,
    "wrong_iss": _wrong_issuer,
    "unknown_kind": _unknown_kind,
    "oversized": _oversized,
    "org_claim_not_the_users_org": _other_org,
    "not_a_jwt": _garbage,
    "header_not_an_object": _header_not_an_object,
}
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti", "org", "scope", "kind")


def _assert_unauthenticated(response, detail: str | None = None) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")
    if detail is not None:
        assert response.json()["detail"] == detail


INVALID = "The bearer token is invalid or expired."
MISSING = "A valid bearer token is required."


async def test_hand_built_token_with_every_claim_is_accepted(app, client, world):
    # The control for the cases below: the same builder, unaltered, gets in.
    token = _sign(app, _claims(app, world))
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == world.clinician.id


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_token_is_401_unauthenticated(app, client, world, kind):
    token = BAD_TOKENS[kind](app, world)
    # A token we signed for another organization passes verification; the account check refuses it.
    detail = "The account is not active." if kind == "org_claim_not_the_users_org" else INVALID
    for path in ("/v1/me", "/v1/courses"):  # a plain caller and a scoped one
        _assert_unauthenticated(await client.get(path, headers={"Authorization": f"Bearer {token}"}), detail)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_token_missing_a_required_claim_is_401_unauthenticated(app, client, world, claim):
    token = _sign(app, _claims(app, world, **{claim: _DROP}))
    _assert_unauthenticated(await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}))


async def test_missing_or_non_bearer_authorization_is_401_unauthenticated(client, world):
    for path in ("/v1/me", "/v1/courses"):  # a plain caller and a scoped one
        _assert_unauthenticated(await client.get(path), MISSING)
        _assert_unauthenticated(await client.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"}), MISSING)
        _assert_unauthenticated(await client.get(path, headers={"Authorization": "Bearer "}), MISSING)


async def test_user_deactivated_after_issue_loses_access_at_the_next_request(client, world):
    assert (await client.get("/v1/me", headers=world.clinician.headers)).status_code == 200
    current = await client.get(f"/v1/users/{world.clinician.id}", headers=world.admin.headers)
    headers = {**world.admin.headers, "If-Match": current.headers["etag"]}
    assert (await client.patch(f"/v1/users/{world.clinician.id}", json={"active": False}, headers=headers)).status_code == 200

    _assert_unauthenticated(await client.get("/v1/me", headers=world.clinician.headers))
    _assert_unauthenticated(await client.get("/v1/patients", headers=world.clinician.headers))


async def test_revoked_integration_loses_access_at_the_next_request(client, world):
    assert (await client.get("/v1/me", headers=world.ehr.headers)).status_code == 200
    current = await client.get(f"/v1/integrations/{world.ehr.id}", headers=world.admin.headers)
    headers = {**world.admin.headers, "If-Match": current.headers["etag"]}
    assert (await client.delete(f"/v1/integrations/{world.ehr.id}", headers=headers)).status_code == 204

    _assert_unauthenticated(await client.get("/v1/me", headers=world.ehr.headers))
    _assert_unauthenticated(await client.get("/v1/patients", headers=world.ehr.headers))


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_core_security_imports_jose_or_argon2():
    security = APP_DIR / "core" / "security.py"
    assert {"jose", "argon2"} <= _imported_roots(security)  # the scan sees imports where they are
    offenders = sorted(
        str(path.relative_to(APP_DIR.parent))
        for path in APP_DIR.rglob("*.py")
        if path != security and _imported_roots(path) & {"jose", "argon2"}
    )
    assert offenders == []
