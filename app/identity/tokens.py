"""The OAuth 2.0 grants: password, rotating refresh tokens, client credentials (a secret or a signed assertion)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.concurrency import run_in_threadpool

from app.core.ids import new_id, utcnow
from app.core.security import (
    ASSERTION_ALGORITHMS,
    InvalidAssertion,
    NotSignedByClient,
    Secrets,
    read_unverified,
    verify_assertion_signature,
)
from app.identity import assertions, repository, smart
from app.identity.roles import SCOPES, scopes_for_roles

Subject = tuple[str, str, str]  # (kind, id, organization id)


class GrantError(Exception):
    """An RFC 6749 error: ``error`` code, description, HTTP status."""

    def __init__(
        self, error: str, description: str, status: int = 400, *, commit: bool = False, subject: Subject | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(description)
        self.error, self.description, self.status, self.reason = error, description, status, reason
        self.commit = commit  # the refusal itself changed state (a revoked family) and must be kept
        self.subject = subject  # the account the attempt named, when it exists (for the audit log)
        # why, for the audit event: never a credential, never a token


def _integration_scopes(held: frozenset[str], requested: str | None) -> tuple[list[str], str]:
    """An integration's grant: the own scopes its token carries, and the ``scope`` answered (smart module).

    Own scopes asked for beyond what the integration holds are ``invalid_scope``; SMART system
    scopes it cannot be granted are left out; nothing left to grant is ``invalid_scope``.
    """
    if not requested:
        return sorted(held), " ".join(sorted(held))
    own: set[str] = set()
    granted: list[str] = []
    for word in dict.fromkeys(requested.split()):
        needed = frozenset({word}) if word in SCOPES else smart.own_scopes_for(word)
        if needed is None or (word in SCOPES and word not in held):
            raise GrantError("invalid_scope", "The requested scope exceeds what this client may have.")
        if needed and needed <= held:
            own |= needed
            granted.append(word)
    if not granted:
        raise GrantError("invalid_scope", "None of the requested scopes can be granted to this client.")
    return sorted(own), " ".join(granted)


def _narrow(granted: frozenset[str], requested: str | None) -> list[str]:
    """The scopes to grant: all granted, or the requested subset (invalid_scope if it asks for more)."""
    if not requested:
        return sorted(granted)
    wanted = set(requested.split())
    if not wanted <= granted:
        raise GrantError("invalid_scope", "The requested scope exceeds what this client may have.")
    return sorted(wanted)


async def _user_tokens(
    db: AsyncConnection, secrets: Secrets, user: Any, scope: str | None, family_id: str | None = None,
    granted: frozenset[str] | None = None,
) -> dict[str, Any]:
    allowed = scopes_for_roles(user.roles) if granted is None else granted & scopes_for_roles(user.roles)
    scopes = _narrow(allowed, scope)
    access, expires_in = secrets.issue_access_token(sub=user.id, kind="user", org=user.organization_id, scopes=scopes)
    token_id, secret = new_id(), secrets.new_secret()
    expires_at = utcnow() + timedelta(days=secrets.settings.refresh_token_days)
    await repository.store_refresh_token(
        db, token_id, family_id or new_id(), user.id, secrets.hash_secret(secret), " ".join(scopes), expires_at
    )
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": " ".join(scopes),
        "refresh_token": f"{token_id}.{secret}",
    }


async def password_grant(
    db: AsyncConnection, secrets: Secrets, email: str, password: str, scope: str | None
) -> tuple[dict, Subject]:
    """Log a person in; the same hashing work is done whether or not the account exists."""
    user = await repository.user_for_login(db, email)
    # Argon2 is deliberately slow: keep it off the event loop.
    ok = await run_in_threadpool(secrets.verify_password, password, user.password_hash if user else None)
    if not ok or not user.active:
        subject = ("user", user.id, user.organization_id) if user else None
        raise GrantError("invalid_grant", "The email or password is wrong, or the account is inactive.", subject=subject)
    return await _user_tokens(db, secrets, user, scope), ("user", user.id, user.organization_id)


async def refresh_grant(
    db: AsyncConnection, secrets: Secrets, refresh_token: str, scope: str | None
) -> tuple[dict, Subject]:
    """Rotate a refresh token; a spent token coming back revokes its whole family."""
    token_id, _, secret = refresh_token.partition(".")
    row = await repository.get_refresh_token(db, token_id) if token_id and secret else None
    if row is None or not secrets.verify_secret(secret, row.token_hash):
        raise GrantError("invalid_grant", "The refresh token is not valid.")
    if row.revoked_at is not None:
        raise GrantError("invalid_grant", "The refresh token has been revoked.")
    if not await repository.spend_refresh_token(db, token_id):
        await repository.revoke_family(db, row.family_id)
        raise GrantError("invalid_grant", "The refresh token was already used; its family is revoked.", commit=True)
    expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=utcnow().tzinfo)
    if expires_at <= utcnow():
        raise GrantError("invalid_grant", "The refresh token has expired.")
    user = await repository.active_user(db, row.user_id)
    if user is None:
        raise GrantError("invalid_grant", "The account is inactive.")
    # RFC 6749, 6: a refresh grants at most the scope of the log-in, and still no more than the roles allow.
    body = await _user_tokens(db, secrets, user, scope, family_id=row.family_id, granted=frozenset(row.scope.split()) or None)
    return body, ("user", user.id, user.organization_id)


async def client_credentials_grant(
    db: AsyncConnection, secrets: Secrets, client_id: str, client_secret: str, scope: str | None
) -> tuple[dict, Subject]:
    """Authenticate an integration by its client id and secret."""
    integration = await repository.integration_for_login(db, client_id)
    if not secrets.verify_secret(client_secret, integration.secret_hash if integration else None):
        subject = ("integration", integration.id, integration.organization_id) if integration else None
        raise GrantError("invalid_client", "The client credentials are not valid.", status=401, subject=subject)
    return _integration_tokens(secrets, integration, scope)


def _integration_tokens(secrets: Secrets, integration: Any, scope: str | None) -> tuple[dict, Subject]:
    scopes, granted = _integration_scopes(frozenset(integration.scopes), scope)
    access, expires_in = secrets.issue_access_token(
        sub=integration.id, kind="integration", org=integration.organization_id, scopes=scopes
    )
    body = {"access_token": access, "token_type": "bearer", "expires_in": expires_in, "scope": granted}
    return body, ("integration", integration.id, integration.organization_id)


def assertion_issuer(assertion: str) -> str | None:
    """The client an assertion claims to come from, unverified (to throttle and audit by it)."""
    try:
        issuer = read_unverified(assertion)[1].get("iss")
    except InvalidAssertion:
        return None
    return issuer if isinstance(issuer, str) else None


def _refused(reason: str, subject: Subject | None = None, told: str | None = None) -> GrantError:
    """invalid_client: the caller reads ``told`` (else the reason); the audit event keeps the reason."""
    return GrantError("invalid_client", f"The client assertion is not valid: {told or reason}.", status=401,
                      subject=subject, reason=reason)


NOT_SIGNED = "it is not signed by a key registered for this client"


async def assertion_grant(
    db: AsyncConnection, secrets: Secrets, key_sets: assertions.KeySets, assertion: str, token_url: str,
    named_client: str | None, scope: str | None,
) -> tuple[dict, Subject]:
    """Authenticate an integration by a JWT it signed with a registered key (SMART Backend Services).

    The signature is checked before any claim: an unknown client, a client without keys, an
    unknown kid and a bad signature all answer the same, so client ids cannot be probed.
    """
    try:
        header, claims = read_unverified(assertion)
    except InvalidAssertion as exc:
        raise _refused(str(exc)) from None
    algorithm, kid, issuer = header.get("alg"), header.get("kid"), claims.get("iss")
    integration = await repository.integration_for_login(db, issuer) if isinstance(issuer, str) and issuer else None
    subject = ("integration", integration.id, integration.organization_id) if integration else None
    if algorithm not in ASSERTION_ALGORITHMS:
        raise _refused(f"its algorithm must be RS384 or ES384, not {str(algorithm)[:20]!r}", subject)
    if not isinstance(kid, str) or not kid:
        raise _refused("its header has no kid", subject)
    try:
        if integration is None or not (integration.jwks or integration.jwks_url):
            raise NotSignedByClient("no such client, or a client without a key set")
        key = assertions.key_by_kid(integration.jwks, kid) if integration.jwks else await key_sets.key(integration.jwks_url, kid)
        if key is None:
            raise NotSignedByClient("no key in the client's key set has the assertion's kid")
        verify_assertion_signature(assertion, algorithm, key)
        checked = assertions.check_claims(claims, token_url, named_client)
    except NotSignedByClient as exc:
        raise _refused(str(exc), subject, told=NOT_SIGNED) from None
    except InvalidAssertion as exc:
        raise _refused(str(exc), subject) from None
    if not await repository.remember_assertion(db, integration.id, checked.jti, checked.expires_at):
        raise _refused("its jti was already used (a replayed assertion)", subject)
    return _integration_tokens(secrets, integration, scope)


async def named_subject(db: AsyncConnection, grant: str | None, name: str | None) -> Subject | None:
    """The account a refused attempt named, if it exists (for its audit event); no credential is checked."""
    if grant == "password" and name:
        user = await repository.user_for_login(db, name)
        return ("user", user.id, user.organization_id) if user else None
    if grant == "client_credentials" and name:
        integration = await repository.integration_for_login(db, name)
        return ("integration", integration.id, integration.organization_id) if integration else None
    return None
