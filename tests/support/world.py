"""Builds an organization with one person per role and an integration, straight through the repositories."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from app.core.db import transaction
from app.identity import repository as identity

PASSWORD = "correct-horse-battery-staple"
CLINICAL_SCOPES = ["clinical:read", "clinical:write"]


@dataclass
class Actor:
    """Someone who calls the API: an id and the headers that authenticate them."""

    id: str
    headers: dict[str, str]
    email: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


@dataclass
class World:
    """One organization and its callers."""

    org_id: str
    actors: dict[str, Actor] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Actor:
        try:
            return self.__dict__["actors"][name]
        except KeyError:
            raise AttributeError(name) from None


ROLES = {
    "admin": ["admin"],
    "supervisor": ["supervisor", "clinician"],
    "clinician": ["clinician"],
    "clinician2": ["clinician"],
    "researcher": ["researcher"],
}


def bearer(app: FastAPI, sub: str, kind: str, org: str, scopes: list[str]) -> dict[str, str]:
    """Headers with a token signed by the app's own key."""
    token, _ = app.state.secrets.issue_access_token(sub=sub, kind=kind, org=org, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def make_world(app: FastAPI, integration_scopes: list[str] | None = None) -> World:
    """A fresh organization with an admin, a supervisor, two clinicians, a researcher and an EHR integration."""
    secrets = app.state.secrets
    tag = uuid.uuid4().hex[:10]
    password_hash = secrets.hash_password(PASSWORD)
    async with transaction(app.state.engine, write=True) as db:
        org = await identity.create_organization(db, f"Org {tag}")
        world = World(org["id"])
        for name, roles in ROLES.items():
            email = f"{name}-{tag}@example.test"
            user = await identity.create_user(
                db, org["id"], {"email": email, "display_name": name.title(), "roles": roles, "password_hash": password_hash}
            )
            from app.identity.roles import scopes_for_roles

            headers = bearer(app, user["id"], "user", org["id"], sorted(scopes_for_roles(roles)))
            world.actors[name] = Actor(user["id"], headers, email=email)
        scopes = integration_scopes or CLINICAL_SCOPES
        client_secret = secrets.new_secret()
        client_id = f"ipt_test_{tag}"
        integration = await identity.create_integration(
            db, org["id"], {"name": "EHR", "scopes": scopes, "client_id": client_id, "secret_hash": secrets.hash_secret(client_secret)}
        )
        world.actors["ehr"] = Actor(
            integration["id"], bearer(app, integration["id"], "integration", org["id"], scopes),
            client_id=client_id, client_secret=client_secret,
        )
    return world


async def create_patient(client: Any, actor: Actor, **fields: Any) -> dict:
    """POST a patient and return it."""
    body = {"display_name": "Test Patient", **fields}
    response = await client.post("/v1/patients", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return response.json()
