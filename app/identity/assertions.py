"""SMART Backend Services client assertions (RFC 7523): the claims' rules and the clients' key sets.

An integration registered with a public key set authenticates at the token endpoint with a JWT
it signs (RS384 or ES384). Its claims: ``iss`` = ``sub`` = the client id, ``aud`` = the token
URL as the client reached it, ``exp`` at most five minutes ahead, a ``jti`` never seen before
(kept in ``client_assertion`` until it expires, so a replay is refused by every API process), and
a ``kid`` in the header naming the key. Clocks may differ by ``CLOCK_SKEW_SECONDS`` either way.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import orjson

from app.core.outbound import check_public_url
from app.core.security import InvalidAssertion, NotSignedByClient, public_key_problem

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME_SECONDS = 300  # SMART: exp "no more than five minutes in the future"
CLOCK_SKEW_SECONDS = 30
MAX_JTI_LENGTH = 255
MAX_KEYS = 20
MAX_JWKS_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
KEY_SET_TTL_SECONDS = 300.0  # a fetched key set is trusted this long
REFETCH_AFTER_SECONDS = 30.0  # an unknown kid refetches (the client rotated keys), at most this often


@dataclass(frozen=True, slots=True)
class Assertion:
    """An assertion's checked claims: who it names, its jti, and until when that jti must be remembered."""

    client_id: str
    jti: str
    expires_at: int


def check_claims(claims: dict, token_url: str, named_client: str | None, now: float | None = None) -> Assertion:
    """Apply RFC 7523's and SMART's rules to an assertion's claims (the signature is checked apart)."""
    now = time.time() if now is None else now
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer or issuer != subject:
        raise InvalidAssertion("iss and sub must both be the client id")
    if named_client is not None and named_client != issuer:
        raise InvalidAssertion("client_id does not match the assertion's iss")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if token_url not in audiences:
        raise InvalidAssertion("aud is not this token endpoint's URL")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise InvalidAssertion("exp is missing or not a number")
    if expires <= now - CLOCK_SKEW_SECONDS:
        raise InvalidAssertion("the assertion has expired")
    if expires > now + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise InvalidAssertion("exp is more than five minutes ahead")
    for early in ("nbf", "iat"):
        value = claims.get(early)
        if value is not None and (not isinstance(value, int | float) or value > now + CLOCK_SKEW_SECONDS):
            raise InvalidAssertion(f"{early} is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
        raise InvalidAssertion("jti is missing or longer than 255 characters")
    return Assertion(issuer, jti, int(expires) + CLOCK_SKEW_SECONDS)


def key_set_problem(jwks: object) -> str | None:
    """Why a key set cannot be registered or used, or None: public RS384/ES384 signing keys with unique kids."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        return f"a JWKS is an object whose keys array holds 1-{MAX_KEYS} keys"
    for key in keys:
        problem = public_key_problem(key)
        if problem:
            return problem
    kids = [key["kid"] for key in keys]
    return "every kid must be unique in the key set" if len(set(kids)) != len(kids) else None


def key_by_kid(jwks: dict, kid: str) -> dict | None:
    """The key the header's kid names, or None."""
    return next((key for key in jwks.get("keys", ()) if key.get("kid") == kid), None)


class KeySets:
    """Integrations' key sets fetched from their JWKS URLs, cached per process.

    The URL is checked against private addresses before every fetch (as webhook URLs are), the
    answer is capped at 64 KB and 5 s, redirects are not followed, and an unknown kid fetches
    again at most every 30 s, so a client's key rotation is seen without letting one flood us.
    """

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._cached: dict[str, tuple[float, dict]] = {}

    async def key(self, url: str, kid: str) -> dict:
        """The key ``kid`` of the set at ``url``; InvalidAssertion if the set cannot be had or lacks it."""
        fetched_at, jwks = self._cached.get(url, (0.0, {}))
        age = time.monotonic() - fetched_at
        key = key_by_kid(jwks, kid) if age < KEY_SET_TTL_SECONDS else None
        if key is None and age >= REFETCH_AFTER_SECONDS:
            jwks = await self._fetch(url)
            self._cached[url] = (time.monotonic(), jwks)
            key = key_by_kid(jwks, kid)
        if key is None:
            raise NotSignedByClient("no key in the client's key set has the assertion's kid")
        return key

    async def _fetch(self, url: str) -> dict:
        try:
            await asyncio.to_thread(check_public_url, url, self.allow_private, what="JWKS URL", loc=["jwks_url"])
        except Exception:  # noqa: BLE001 - any refusal of the URL is the same refusal of the assertion
            raise InvalidAssertion("the client's JWKS URL is refused (private address or unresolvable)") from None
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client, \
                    client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise InvalidAssertion("the client's key set is larger than 64 KB")
            if response.status_code != 200:
                raise InvalidAssertion(f"the client's JWKS URL answered {response.status_code}")
            jwks = orjson.loads(body)
        except httpx.HTTPError:
            raise InvalidAssertion("the client's JWKS URL could not be fetched") from None
        except orjson.JSONDecodeError:
            raise InvalidAssertion("the client's JWKS URL did not answer JSON") from None
        problem = key_set_problem(jwks)
        if problem:
            raise InvalidAssertion(f"the client's key set is not usable: {problem}")
        return jwks
