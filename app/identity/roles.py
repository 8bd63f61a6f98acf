"""Roles, scopes, and what each role grants (api.md, Authorization)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Role = Literal["clinician", "supervisor", "researcher", "admin"]
Scope = Literal["clinical:read", "clinical:write", "research:export", "org:admin", "audit:read", "webhooks:manage"]

ROLES: tuple[str, ...] = ("clinician", "supervisor", "researcher", "admin")
SCOPES: tuple[str, ...] = ("clinical:read", "clinical:write", "research:export", "org:admin", "audit:read", "webhooks:manage")

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "clinician": frozenset({"clinical:read", "clinical:write"}),
    "supervisor": frozenset({"clinical:read", "clinical:write"}),
    "researcher": frozenset({"research:export"}),
    "admin": frozenset({"org:admin", "audit:read", "webhooks:manage"}),
}


def scopes_for_roles(roles: Iterable[str]) -> frozenset[str]:
    """The union of the scopes every role grants."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_SCOPES.get(role, frozenset())
    return frozenset(granted)
