"""Every query on organizations, users, integrations and refresh tokens."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import insert_ignoring_conflicts
from app.core.errors import Conflict, NotFound
from app.core.ids import utcnow
from app.core.models import new_row
from app.core.pagination import Page
from app.core.repository import columns, fetch_page, one_or_404, update_versioned
from app.identity.models import AppUser, ClientAssertion, Integration, Organization, RefreshToken

ORG_PUBLIC = ("id", "name", "data_use_agreement", "version", "created_at", "updated_at")
USER_PUBLIC = ("id", "organization_id", "email", "display_name", "roles", "active", "version", "created_at", "updated_at")
INTEGRATION_PUBLIC = ("id", "organization_id", "name", "client_id", "scopes", "jwks", "jwks_url", "version", "created_at")
_org = columns(Organization, ORG_PUBLIC)
_user = columns(AppUser, USER_PUBLIC)
_integration = columns(Integration, INTEGRATION_PUBLIC)


# organizations -------------------------------------------------------------
def _new_export_key() -> str:
    return secrets.token_urlsafe(32)  # 256 bits; the research export's HMAC key


async def create_organization(db: AsyncConnection, name: str) -> dict[str, Any]:
    """A new tenant, with its own research export key (never returned)."""
    values = new_row(Organization, {"name": name, "research_export_key": _new_export_key()})
    await db.execute(sa.insert(Organization).values(values))
    return {column: values[column] for column in ORG_PUBLIC}


async def get_organization(db: AsyncConnection, org_id: str) -> dict[str, Any]:
    """The organization, or 404."""
    return await one_or_404(db, sa.select(*_org).where(Organization.id == org_id), "No such organization.")


async def update_organization(db: AsyncConnection, org_id: str, version: int, changes: dict) -> dict[str, Any]:
    """Change the organization at the version the caller read."""
    return await update_versioned(db, Organization, Organization.id == org_id, version, changes, _org)


async def research_settings(db: AsyncConnection, org_id: str) -> tuple[str, bool]:
    """The organization's research export key (made on first use if it has none) and its data-use agreement flag."""
    await db.execute(
        sa.update(Organization)
        .where(Organization.id == org_id, Organization.research_export_key.is_(None))
        .values(research_export_key=_new_export_key())
    )
    row = (await db.execute(
        sa.select(Organization.research_export_key, Organization.data_use_agreement).where(Organization.id == org_id)
    )).first()
    if row is None:
        raise NotFound("No such organization.")
    return row.research_export_key, bool(row.data_use_agreement)


async def rotate_research_export_key(db: AsyncConnection, org_id: str) -> None:
    """Replace the organization's research export key: every pseudonym changes from the next export on."""
    result = await db.execute(
        sa.update(Organization).where(Organization.id == org_id).values(research_export_key=_new_export_key())
    )
    if result.rowcount != 1:
        raise NotFound("No such organization.")


# users ------------------------------------------------------------------------
async def create_user(db: AsyncConnection, org_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a user; 409 email_taken when the email is already registered."""
    row = new_row(AppUser, {"organization_id": org_id, **values})
    created = await insert_ignoring_conflicts(db, AppUser.__table__, row, _user)
    if created is None:
        raise Conflict("email_taken", "A user with this email already exists.")
    return created


async def user_for_login(db: AsyncConnection, email: str) -> Any:
    """The account behind an email (any organization), or None."""
    query = sa.select(AppUser.id, AppUser.organization_id, AppUser.password_hash, AppUser.active, AppUser.roles)
    return (await db.execute(query.where(AppUser.email == email.lower()))).first()


async def active_user(db: AsyncConnection, user_id: str) -> Any:
    """An active user's id, organization and roles, or None."""
    query = sa.select(AppUser.id, AppUser.organization_id, AppUser.roles)
    return (await db.execute(query.where(AppUser.id == user_id, AppUser.active.is_(True)))).first()


async def get_user(db: AsyncConnection, org_id: str, user_id: str) -> dict[str, Any]:
    """One user of the organization, or 404."""
    query = sa.select(*_user).where(AppUser.id == user_id, AppUser.organization_id == org_id)
    return await one_or_404(db, query, "No such user.")


async def list_users(db: AsyncConnection, org_id: str, page: Page) -> dict:
    """A page of the organization's users."""
    query = sa.select(*_user).where(AppUser.organization_id == org_id)
    return await fetch_page(db, query, AppUser.id, page)


async def update_user(db: AsyncConnection, org_id: str, user_id: str, version: int, changes: dict) -> dict[str, Any]:
    """Change a user at the version the caller read."""
    if "email" in changes:
        taken = await db.scalar(sa.select(AppUser.id).where(AppUser.email == changes["email"], AppUser.id != user_id))
        if taken is not None:
            raise Conflict("email_taken", "A user with this email already exists.")
    where = sa.and_(AppUser.id == user_id, AppUser.organization_id == org_id)
    return await update_versioned(db, AppUser, where, version, changes, _user)


async def user_is_clinician(db: AsyncConnection, org_id: str, user_id: str) -> bool:
    """Whether the id names an active clinician of the organization."""
    query = sa.select(AppUser.roles).where(
        AppUser.id == user_id, AppUser.organization_id == org_id, AppUser.active.is_(True)
    )
    roles = await db.scalar(query)
    return roles is not None and "clinician" in roles


# integrations -------------------------------------------------------------------
async def create_integration(db: AsyncConnection, org_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Insert an integration (``values`` holds client_id and secret_hash)."""
    row = new_row(Integration, {"organization_id": org_id, **values})
    await db.execute(sa.insert(Integration).values(row))
    return {name: row[name] for name in INTEGRATION_PUBLIC}


async def integration_for_login(db: AsyncConnection, client_id: str) -> Any:
    """A live integration by client id, or None."""
    query = sa.select(Integration.id, Integration.organization_id, Integration.secret_hash, Integration.scopes,
                      Integration.jwks, Integration.jwks_url)
    return (await db.execute(query.where(Integration.client_id == client_id, Integration.deleted_at.is_(None)))).first()


def _live_integration(org_id: str, integration_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        Integration.id == integration_id, Integration.organization_id == org_id, Integration.deleted_at.is_(None)
    )


async def get_integration(db: AsyncConnection, org_id: str, integration_id: str) -> dict[str, Any]:
    """One live integration of the organization, or 404."""
    return await one_or_404(db, sa.select(*_integration).where(_live_integration(org_id, integration_id)), "No such integration.")


async def list_integrations(db: AsyncConnection, org_id: str, page: Page) -> dict:
    """A page of the organization's live integrations."""
    query = sa.select(*_integration).where(Integration.organization_id == org_id, Integration.deleted_at.is_(None))
    return await fetch_page(db, query, Integration.id, page)


async def update_integration(db: AsyncConnection, org_id: str, integration_id: str, version: int, changes: dict) -> dict:
    """Change a live integration at ``version`` (412 otherwise, 404 when absent or revoked)."""
    return await update_versioned(db, Integration, _live_integration(org_id, integration_id), version, changes,
                                  _integration, touch=False)


async def revoke_integration(db: AsyncConnection, org_id: str, integration_id: str, version: int) -> None:
    """Revoke an integration: its tokens stop working at their next request."""
    changes = {"deleted_at": utcnow()}
    await update_versioned(db, Integration, _live_integration(org_id, integration_id), version, changes, _integration, touch=False)


async def remember_assertion(db: AsyncConnection, integration_id: str, jti: str, expires_at: int) -> bool:
    """Keep an accepted assertion's jti until it expires; False if it was already kept (a replay)."""
    values = {"integration_id": integration_id, "jti": jti, "expires_at": datetime.fromtimestamp(expires_at, UTC)}
    return await insert_ignoring_conflicts(db, ClientAssertion.__table__, values, [ClientAssertion.jti]) is not None


async def forget_expired_assertions(db: AsyncConnection) -> int:
    """Drop the jtis of assertions that have expired: they would be refused for their exp anyway."""
    result = await db.execute(sa.delete(ClientAssertion).where(ClientAssertion.expires_at < utcnow()))
    return result.rowcount or 0


# refresh tokens ------------------------------------------------------------------
async def store_refresh_token(
    db: AsyncConnection, token_id: str, family_id: str, user_id: str, token_hash: str, scope: str, expires_at: datetime
) -> None:
    """Remember a refresh token by its hash, with the scope granted at log-in."""
    await db.execute(
        sa.insert(RefreshToken).values(
            id=token_id, family_id=family_id, user_id=user_id, token_hash=token_hash, scope=scope,
            expires_at=expires_at, created_at=utcnow(),
        )
    )


async def revoke_user_tokens(db: AsyncConnection, user_id: str) -> None:
    """Revoke every live refresh token of a user (password changed, account deactivated)."""
    stmt = (
        sa.update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await db.execute(stmt)


async def get_refresh_token(db: AsyncConnection, token_id: str) -> Any:
    """A refresh token row, or None."""
    return (await db.execute(sa.select(RefreshToken).where(RefreshToken.id == token_id))).first()


async def spend_refresh_token(db: AsyncConnection, token_id: str) -> bool:
    """Mark a live token used; False if it was already spent or revoked (a race lost, or a reuse)."""
    stmt = (
        sa.update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=utcnow())
    )
    return (await db.execute(stmt)).rowcount == 1


async def revoke_family(db: AsyncConnection, family_id: str) -> None:
    """Revoke every token of a family: a spent token came back, so the family may be stolen."""
    stmt = (
        sa.update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await db.execute(stmt)
