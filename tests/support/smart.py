"""A SMART Backend Services client's side for tests: key pairs, their JWKS, and signed client assertions.

Keys and signatures come from joserfc (authlib's JOSE library), not from the service's own code,
so the server's verification is checked against somebody else's signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class ClientKey:
    """A client's key pair: the private half signs, the public half is registered."""

    key: Any
    kid: str
    alg: str

    @classmethod
    def rsa(cls, bits: int = 2048) -> ClientKey:
        return cls(RSAKey.generate_key(bits), f"rsa-{uuid.uuid4().hex[:8]}", "RS384")

    @classmethod
    def ec(cls) -> ClientKey:
        return cls(ECKey.generate_key("P-384"), f"ec-{uuid.uuid4().hex[:8]}", "ES384")

    def public(self) -> dict:
        """The public JWK, as a client registers it."""
        return {**self.key.as_dict(private=False), "kid": self.kid, "alg": self.alg, "use": "sig"}


def jwks(*keys: ClientKey) -> dict:
    """A JWKS of the keys' public halves."""
    return {"keys": [key.public() for key in keys]}


@dataclass
class Assertion:
    """The claims and header of one client assertion, to vary one thing at a time."""

    client_id: str
    token_url: str
    claims: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)

    def standard_claims(self) -> dict:
        now = int(time.time())
        return {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "exp": now + 240,
                "iat": now, "jti": uuid.uuid4().hex, **self.claims}

    def signed(self, key: ClientKey) -> str:
        """Signed with ``key`` by joserfc (its alg and kid unless the header says otherwise)."""
        header = {"alg": key.alg, "kid": key.kid, "typ": "JWT", **self.header}
        claims = {k: v for k, v in self.standard_claims().items() if v is not None}
        return jwt.encode(header, claims, key.key, algorithms=[header["alg"]])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, claims: dict, hmac_key: bytes | None = None) -> str:
    """A JWT no honest library would sign: ``alg: none`` (no signature) or HS256 under ``hmac_key``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())


def token_form(assertion: str, scope: str | None = "system/*.rs", **extra: str) -> dict[str, str]:
    """The token request of SMART Backend Services."""
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    if scope is not None:
        form["scope"] = scope
    return form | extra
