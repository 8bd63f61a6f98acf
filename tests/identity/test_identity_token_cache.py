"""A remembered verification never outlives the token's own time window."""

import time

import pytest
from jose import jwt

from app.core.config import Settings
from app.core.security import InvalidToken, Secrets


def _token(settings: Settings, lifetime: float) -> str:
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "u1", "iat": now, "nbf": now,
              "exp": now + lifetime, "jti": "j1", "org": "o1", "kind": "user", "scope": "clinical:read"}
    return jwt.encode(claims, settings.secret_key, algorithm="HS256")


def test_a_remembered_token_is_refused_once_it_expires():
    settings = Settings(env="test", password_hash_memory_kib=1024, password_hash_time_cost=1)
    secrets = Secrets(settings)
    token = _token(settings, 2)
    assert secrets.decode_access_token(token).sub == "u1"
    assert secrets.decode_access_token(token).sub == "u1"  # from memory
    time.sleep(3.1)  # python-jose still accepts a token in the second of its exp
    with pytest.raises(InvalidToken):
        secrets.decode_access_token(token)


def test_a_tampered_copy_of_a_remembered_token_is_still_refused():
    settings = Settings(env="test", password_hash_memory_kib=1024, password_hash_time_cost=1)
    secrets = Secrets(settings)
    token = _token(settings, 60)
    secrets.decode_access_token(token)
    head, payload, signature = token.split(".")
    with pytest.raises(InvalidToken):
        secrets.decode_access_token(f"{head}.{payload}.{signature[:-2]}AA")
