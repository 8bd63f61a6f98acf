"""The OAuth 2.0 grants: password, rotating refresh tokens, and client credentials."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.concurrency import run_in_threadpool

from app.core.ids import new_id, utcnow
from app.core.security import Secrets
from app.identity import repository
from app.identity.roles import scopes_for_roles

Subject = tuple[str, str, str]  # (kind, id, organization id)


class GrantError(Exception):
    """An RFC 6749 error: ``error`` code, description, HTTP status."""

    def __init__(
        self, error: str, description: str, status: int = 400, *, commit: bool = False, subject: Subject | None = None
    ) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.commit = commit  # the refusal itself changed state (a revoked family) and must be kept
        self.subject = subject  # the account the attempt named, when it exists (for the audit log)


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
    scopes = _narrow(frozenset(integration.scopes), scope)
    access, expires_in = secrets.issue_access_token(
        sub=integration.id, kind="integration", org=integration.organization_id, scopes=scopes
    )
    body = {"access_token": access, "token_type": "bearer", "expires_in": expires_in, "scope": " ".join(scopes)}
    return body, ("integration", integration.id, integration.organization_id)


async def named_subject(db: AsyncConnection, grant: str | None, name: str | None) -> Subject | None:
    """The account a refused attempt named, if it exists (for its audit event); no credential is checked."""
    if grant == "password" and name:
        user = await repository.user_for_login(db, name)
        return ("user", user.id, user.organization_id) if user else None
    if grant == "client_credentials" and name:
        integration = await repository.integration_for_login(db, name)
        return ("integration", integration.id, integration.organization_id) if integration else None
    return None
