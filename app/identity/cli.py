"""The ``ipt bootstrap`` and ``ipt integration create`` commands: an organization's first admin, machine clients."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from app.core.cli import CliError, with_db


def add_commands(sub: Any) -> None:
    """Add ``ipt bootstrap`` and ``ipt integration create`` to the command's subparsers."""
    p = sub.add_parser("bootstrap", help="create an organization and its first admin")
    p.add_argument("--org", required=True)
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    integration = sub.add_parser("integration", help="machine clients").add_subparsers(dest="integration_command", required=True)
    p = integration.add_parser("create", help="register an integration and print its credentials")
    p.add_argument("--org", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--scopes", required=True, help='space-separated, e.g. "clinical:read clinical:write"')
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--jwks", metavar="FILE", help="a file holding the client's public JWKS (SMART Backend Services): no secret")
    keys.add_argument("--jwks-url", metavar="URL", help="where the client publishes its public JWKS: no secret")


def run(args: argparse.Namespace) -> None:
    """Run the command ``args`` names (bootstrap or integration create); a failure is a CliError."""
    if args.command == "bootstrap":
        print(json.dumps(bootstrap(args.org, args.admin_email, args.admin_password)))
    else:
        print(json.dumps(create_integration(args.org, args.name, args.scopes, args.jwks, args.jwks_url)))


def bootstrap(org: str, email: str, password: str) -> dict[str, str]:
    """Create an organization and its first admin."""
    from app.core.errors import Conflict
    from app.identity import repository

    if len(password) < 10:
        raise CliError("the admin password must have at least 10 characters")

    async def work(db: Any, secrets: Any) -> dict[str, str]:
        organization = await repository.create_organization(db, org)
        user = await repository.create_user(
            db,
            organization["id"],
            {"email": email.lower(), "display_name": "Administrator", "roles": ["admin"],
             "password_hash": secrets.hash_password(password)},
        )
        return {"organization_id": organization["id"], "admin_user_id": user["id"]}

    try:
        return asyncio.run(with_db(work))
    except Conflict:
        raise CliError(f"a user with the email {email} already exists") from None


def _key_source(jwks_file: str | None, jwks_url: str | None) -> dict[str, Any]:
    """The checked ``jwks`` or ``jwks_url`` an integration registers with, by the API's own rules."""
    from pydantic import ValidationError

    from app.identity.schemas import IntegrationCreate

    if jwks_file is None and jwks_url is None:
        return {}
    try:
        jwks = json.loads(open(jwks_file).read()) if jwks_file else None  # noqa: SIM115
        body = IntegrationCreate(name="cli", scopes=["clinical:read"], jwks=jwks, jwks_url=jwks_url)
    except (OSError, ValueError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise CliError(f"the key set cannot be registered: {detail}") from None
    return {"jwks": body.jwks.model_dump(exclude_none=True)} if body.jwks else {"jwks_url": body.jwks_url}


def create_integration(org_id: str, name: str, scopes: str, jwks_file: str | None = None,
                       jwks_url: str | None = None) -> dict[str, Any]:
    """Register an integration and return its credentials (a secret, shown only now, unless it has keys)."""
    from app.core.errors import NotFound
    from app.identity import repository
    from app.identity.roles import SCOPES

    wanted = sorted(set(scopes.split()))
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise CliError(f"unknown or missing scopes: {' '.join(unknown) or '(none)'}; choose from {' '.join(SCOPES)}")
    keys = _key_source(jwks_file, jwks_url)

    async def work(db: Any, secrets: Any) -> dict[str, Any]:
        await repository.get_organization(db, org_id)
        client_secret = None if keys else secrets.new_secret()
        values = {"name": name, "scopes": wanted, "client_id": "ipt_" + secrets.new_secret()[:24], **keys}
        if client_secret:
            values["secret_hash"] = secrets.hash_secret(client_secret)
        row = await repository.create_integration(db, org_id, values)
        return {"id": row["id"], "client_id": row["client_id"], "client_secret": client_secret, "scopes": wanted, **keys}

    try:
        return asyncio.run(with_db(work))
    except NotFound:
        raise CliError(f"no organization with id {org_id}") from None
