"""SMART on FHIR for machine clients: system scopes onto the service's own, and the discovery document.

A SMART scope names a FHIR resource type (or ``*``) and permissions: v2's ``c r u d s`` in that
order (``system/Patient.rs``) or v1's ``read``/``write``/``*`` (``system/*.read``). The service's
authorization is coarser than FHIR's types, so a system scope grants the own scope its
permissions need: reading or searching any type this service serves is ``clinical:read``;
creating, updating or deleting is ``clinical:write``. The token's reach is then that own scope's
(every course of the organization, for an integration), whatever type the SMART scope named.

Only system scopes (Backend Services) exist here: no user or patient launch. A requested SMART
scope the integration cannot be granted, or naming a type this service does not serve, is left
out of the grant (SMART lets a server grant less than asked); the own scopes keep their stricter
rule (asking for more than the integration holds is ``invalid_scope``).
"""

from __future__ import annotations

import re

# The FHIR resource types the view serves: what a system scope may name and be granted for.
FHIR_TYPES = ("Patient", "Practitioner", "EpisodeOfCare", "Condition", "Encounter", "Observation",
              "QuestionnaireResponse", "Questionnaire", "CodeSystem", "Group")
_SYSTEM_SCOPE = re.compile(r"system/(\*|[A-Z][A-Za-z]{1,63})\.(?:(c?r?u?d?s?)|(read|write|\*))")
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}


def own_scopes_for(scope: str) -> frozenset[str] | None:
    """The own scopes a SMART system scope needs; None when it is not a system scope at all."""
    match = _SYSTEM_SCOPE.fullmatch(scope)
    if match is None or match.group(2) == "":
        return None
    resource, permissions = match.group(1), match.group(2) or _V1_PERMISSIONS[match.group(3)]
    if resource != "*" and resource not in FHIR_TYPES:
        return frozenset()  # well formed, but nothing here to grant
    needed = set()
    if "r" in permissions or "s" in permissions:
        needed.add("clinical:read")
    if any(p in permissions for p in "cud"):
        needed.add("clinical:write")
    return frozenset(needed)


SCOPES_SUPPORTED = ("system/*.rs", "system/*.cruds", "system/*.read", "system/*.write",
                    *(f"system/{resource}.rs" for resource in FHIR_TYPES), "system/QuestionnaireResponse.c")


def configuration(base_url: str, own_scopes: tuple[str, ...]) -> dict:
    """``/.well-known/smart-configuration`` for Backend Services clients (SMART App Launch 2.x).

    No ``authorization_endpoint`` and no ``code_challenge_methods_supported``: there is no browser
    launch (no authorization-code flow) to point at, and naming one would send an app nowhere.
    """
    return {
        "token_endpoint": f"{base_url}/v1/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "scopes_supported": [*SCOPES_SUPPORTED, *own_scopes],
        "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric",
                         "permission-v2", "permission-v1"],
    }
