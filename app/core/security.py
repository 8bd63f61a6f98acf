"""Tokens and secrets: the only module that imports python-jose, the password hasher or a cipher."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

from app.core.config import Settings
from app.core.ids import new_id, utcnow

MAX_TOKEN_BYTES = 4096
VERIFIED_CACHE_SIZE = 10_000
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti", "org", "scope", "kind")
_DECODE_OPTIONS = {
    "verify_signature": True,
    "verify_aud": True,
    "verify_iat": True,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iss": True,
    "verify_sub": True,
    "verify_jti": True,
    "require_aud": True,
    "require_iat": True,
    "require_exp": True,
    "require_nbf": True,
    "require_iss": True,
    "require_sub": True,
    "require_jti": True,
    "leeway": 0,
}


# SMART Backend Services requires servers to support these two for client assertions; nothing else
# is accepted (no "none", no HS* that would verify with a public key as the shared secret).
ASSERTION_ALGORITHMS = {"RS384": ("RSA", None), "ES384": ("EC", "P-384")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048


class InvalidAssertion(Exception):
    """A client assertion refused; the message says why, for the audit log."""


class NotSignedByClient(InvalidAssertion):
    """No registered key of the client verifies the assertion (none with its kid, one of another type, a bad
    signature): the caller is told no more than that, so keys and client ids cannot be probed."""


class InvalidToken(Exception):
    """The token is not one this service issued, or no longer valid."""


class SecretUnreadable(Exception):
    """A sealed secret did not open: sealed under another IPT_SECRET_KEY, for another row, or altered."""


class SecretBox:
    """Seals secrets the service must read back later (webhook signing secrets) for storage: AES-256-GCM.

    The key is derived from IPT_SECRET_KEY (HKDF), so a copy of the database alone reveals no secret;
    like client secret hashes, sealed secrets need the same IPT_SECRET_KEY to be used again. Each is
    bound to the row that holds it: one copied into another row does not open.
    """

    PREFIX = "sealed1:"

    def __init__(self, secret_key: str) -> None:
        derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ipt stored secrets v1")
        self._aead = AESGCM(derive.derive(secret_key.encode()))

    def seal(self, secret: str, row_id: str) -> str:
        """The secret encrypted for storage in the row ``row_id``."""
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), row_id.encode())
        return self.PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, stored: str, row_id: str) -> str:
        """The secret a row holds; one stored before sealing existed is returned as stored."""
        if not stored.startswith(self.PREFIX):
            return stored
        try:
            sealed = base64.urlsafe_b64decode(stored[len(self.PREFIX):])
            return self._aead.decrypt(sealed[:12], sealed[12:], row_id.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable("the stored secret does not open with this IPT_SECRET_KEY") from exc


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims of an access token."""

    sub: str
    kind: str
    org: str
    scopes: frozenset[str]
    jti: str


class Secrets:
    """Password hashing (Argon2id), opaque secrets, and JWT signing for one configuration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._hasher = PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=1,
            type=Type.ID,
        )
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self.box = SecretBox(settings.secret_key)
        self._alg = settings.jwt_algorithm
        if self._alg == "HS256":
            self._sign_key: str = settings.secret_key
            self._verify_key: str = settings.secret_key
        else:
            self._sign_key = settings.jwt_private_key_file.read_text()  # type: ignore[union-attr]
            self._verify_key = settings.jwt_public_key_file.read_text()  # type: ignore[union-attr]
        self._kid = hashlib.sha256(self._verify_key.encode()).hexdigest()[:16]
        self._verified: dict[str, tuple[Claims, float, float]] = {}

    # passwords -------------------------------------------------------------
    def hash_password(self, password: str) -> str:
        """An Argon2id hash of a password."""
        return self._hasher.hash(password)

    def verify_password(self, password: str, password_hash: str | None) -> bool:
        """Check a password; with no account, verify against a dummy hash so timing is the same."""
        try:
            ok = self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    # high-entropy secrets (client secrets, refresh tokens) ------------------
    @staticmethod
    def new_secret() -> str:
        """A random secret with 256 bits of entropy."""
        return secrets.token_urlsafe(32)

    def hash_secret(self, secret: str) -> str:
        """A keyed hash of a random secret: no slow hash needed at 256 bits of entropy."""
        return hmac.new(self.settings.secret_key.encode(), secret.encode(), hashlib.sha256).hexdigest()

    def verify_secret(self, secret: str, secret_hash: str | None) -> bool:
        """Constant-time check of a secret against its stored hash (a dummy when none)."""
        expected = secret_hash or "0" * 64
        return hmac.compare_digest(self.hash_secret(secret), expected) and secret_hash is not None

    def sign(self, message: bytes) -> str:
        """An HMAC tag (hex) for values the service hands out and takes back, such as cursors."""
        return hmac.new(self.settings.secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]

    # access tokens ---------------------------------------------------------
    def issue_access_token(self, *, sub: str, kind: str, org: str, scopes: list[str]) -> tuple[str, int]:
        """A signed JWT carrying every required claim; returns it with its lifetime in seconds."""
        now = utcnow()
        lifetime = timedelta(minutes=self.settings.access_token_minutes)
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": sub,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": new_id(),
            "org": org,
            "kind": kind,
            "scope": " ".join(sorted(scopes)),
        }
        headers = {"kid": self._kid} if self._alg != "HS256" else None
        token = jwt.encode(claims, self._sign_key, algorithm=self._alg, headers=headers)
        return token, int(lifetime.total_seconds())

    def decode_access_token(self, token: str) -> Claims:
        """Verify a JWT with the pinned algorithm and every claim required; raise InvalidToken.

        A token verified once is remembered (by its exact text) until it expires: its signature
        cannot change, so a later request only re-checks the time window.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, not_before, expires = remembered
            if not_before <= time.time() < expires:
                return claims
            del self._verified[token]
        return self._verify(token)

    def _verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != self._alg:
                raise InvalidToken("unexpected algorithm")
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self._alg],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options=_DECODE_OPTIONS,
            )
        except (JOSEError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(type(exc).__name__) from None
        if any(claims.get(name) in (None, "") and name != "scope" for name in REQUIRED_CLAIMS) or not isinstance(
            claims.get("scope"), str
        ):
            raise InvalidToken("missing claim")
        if claims["kind"] not in ("user", "integration"):
            raise InvalidToken("unknown principal kind")
        verified = Claims(
            sub=str(claims["sub"]),
            kind=claims["kind"],
            org=str(claims["org"]),
            scopes=frozenset(claims["scope"].split()),
            jti=str(claims["jti"]),
        )
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # forget the oldest
        self._verified[token] = (verified, float(claims["nbf"]), float(claims["exp"]))
        return verified

    def jwks(self) -> dict | None:
        """The public key set for asymmetric algorithms; None for HS256 (nothing to publish)."""
        if self._alg == "HS256":
            return None
        key = jwk.construct(self._verify_key, self._alg).to_dict()
        key = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in key.items()}
        key.update({"kid": self._kid, "use": "sig", "alg": self._alg})
        return {"keys": [key]}


# client assertions (RFC 7523, SMART Backend Services) ------------------------
def read_unverified(token: str) -> tuple[dict, dict]:
    """A JWT's header and claims before any check, to find its client and key; InvalidAssertion if unreadable."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidAssertion("assertion too large")
    try:
        header, claims = jwt.get_unverified_header(token), jwt.get_unverified_claims(token)
    except (JOSEError, ValueError, TypeError, KeyError):
        raise InvalidAssertion("malformed assertion") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidAssertion("malformed assertion")
    return header, claims


def public_key_problem(key: object) -> str | None:
    """Why a JWK cannot verify client assertions here (private, weak, another curve), or None if it can."""
    if not isinstance(key, dict):
        return "a key must be a JSON object"
    if _PRIVATE_MEMBERS & key.keys():
        return "the key set holds private or symmetric key material: register only the public keys"
    if not isinstance(key.get("kid"), str) or not 1 <= len(key["kid"]) <= 200:
        return "every key needs a kid (1-200 characters)"
    if key.get("use", "sig") != "sig":
        return "keys must be signing keys (use: sig)"
    algorithm = key.get("alg") or ("RS384" if key.get("kty") == "RSA" else "ES384")
    if algorithm not in ASSERTION_ALGORITHMS or ASSERTION_ALGORITHMS[algorithm][0] != key.get("kty"):
        return "keys must be RSA (RS384) or EC P-384 (ES384)"
    curve = ASSERTION_ALGORITHMS[algorithm][1]
    if curve and key.get("crv") != curve:
        return "EC keys must be on curve P-384 (ES384)"
    try:
        constructed = jwk.construct(key, algorithm)
    except (JOSEError, ValueError, TypeError, KeyError):
        return "the key does not parse"
    if algorithm == "RS384" and constructed.prepared_key.key_size < MIN_RSA_BITS:
        return f"RSA keys must have at least {MIN_RSA_BITS} bits"
    return None


def verify_assertion_signature(token: str, algorithm: str, key: dict) -> None:
    """Check an assertion's signature with one of its client's public keys; InvalidAssertion if it fails."""
    if algorithm not in ASSERTION_ALGORITHMS:
        raise InvalidAssertion(f"algorithm {algorithm!r} is not accepted (RS384 or ES384)")
    # The key passed public_key_problem when it was registered or fetched; here it must fit the algorithm.
    kty, curve = ASSERTION_ALGORITHMS[algorithm]
    if key.get("kty") != kty or key.get("alg", algorithm) != algorithm or (curve and key.get("crv") != curve):
        raise NotSignedByClient("the key named by kid does not fit the algorithm")
    try:
        jws.verify(token, jwk.construct(key, algorithm), algorithms=[algorithm])
    except (JOSEError, ValueError, TypeError, KeyError):
        raise NotSignedByClient("the signature does not verify") from None
