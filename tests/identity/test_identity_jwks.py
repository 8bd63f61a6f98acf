"""Asymmetric signing: the public key is published at /.well-known/jwks.json and verifies the tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwt

from app.main import create_app
from tests.conftest import test_settings as make_settings
from tests.support.world import PASSWORD


def _write_key_pair(directory: Path, algorithm: str) -> tuple[Path, Path]:
    if algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
    private_file, public_file = directory / f"{algorithm}.pem", directory / f"{algorithm}.pub.pem"
    private_file.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_file.write_bytes(
        private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_file, public_file


@asynccontextmanager
async def _asymmetric_app(database_url: str, directory: Path, algorithm: str):
    private_file, public_file = _write_key_pair(directory, algorithm)
    settings = make_settings(
        database_url, jwt_algorithm=algorithm, jwt_private_key_file=private_file, jwt_public_key_file=public_file
    )
    application = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, http, public_file
    finally:
        await application.state.engine.dispose()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_jwks_publishes_the_key_that_verifies_the_apps_tokens(database_url, tmp_path, world, algorithm):
    async with _asymmetric_app(database_url, tmp_path, algorithm) as (application, http, _):
        jwks = await http.get("/.well-known/jwks.json")
        assert jwks.status_code == 200
        keys = jwks.json()["keys"]
        assert len(keys) == 1 and keys[0]["alg"] == algorithm and keys[0]["use"] == "sig"
        assert "d" not in keys[0]  # the public half only

        login = await http.post(
            "/v1/auth/token", data={"grant_type": "password", "username": world.clinician.email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        assert jwt.get_unverified_header(token)["kid"] == keys[0]["kid"]

        settings = application.state.settings
        claims = jwt.decode(token, keys[0], algorithms=[algorithm], audience=settings.jwt_audience, issuer=settings.jwt_issuer)
        assert claims["sub"] == world.clinician.id and claims["org"] == world.org_id
        me = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["id"] == world.clinician.id


async def test_rs256_app_refuses_an_hs256_token_signed_with_its_public_key(database_url, tmp_path, world):
    # The classic algorithm-confusion forgery: the public key is public, so it must never work as an HMAC secret.
    async with _asymmetric_app(database_url, tmp_path, "RS256") as (_, http, public_file):
        valid = (await http.post(
            "/v1/auth/token", data={"grant_type": "password", "username": world.admin.email, "password": PASSWORD}
        )).json()["access_token"]
        _, payload, _ = valid.split(".")
        header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=").decode()
        signature = hmac.new(public_file.read_bytes(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        forged = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
        response = await http.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_jwks_is_404_with_hs256(client):
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
