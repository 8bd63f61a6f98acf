"""The token endpoint, the caller's identity, and the public key set."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.audit import writer as audit
from app.audit.context import AuditNote
from app.core.db import transaction
from app.core.errors import NotFound, RateLimited
from app.core.http import JSON
from app.core.openapi import errors
from app.deps import CurrentPrincipal
from app.identity import assertions, smart, throttle, tokens
from app.identity.roles import SCOPES
from app.identity.schemas import Me, OAuthError, SmartConfiguration, TokenResponse
from app.routing import api_router

router = api_router(tags=["auth"], route_class=APIRoute)
me_router = api_router(tags=["auth"])

_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password", "refresh_token", "client_credentials"]},
                        "client_assertion_type": {"type": "string", "enum": [assertions.JWT_BEARER]},
                        "client_assertion": {"type": "string", "description": "A JWT signed RS384 or ES384 with a registered key."},
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                        "refresh_token": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    }
}
_OAUTH_ERRORS = {
    400: {"model": OAuthError, "description": "RFC 6749 error (invalid_request, invalid_grant, ...)."},
    401: {"model": OAuthError, "description": "invalid_client."},
}


def _oauth_error(error: str, description: str, status: int = 400) -> JSON:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="ipt"'
    return JSON({"error": error, "error_description": description}, status_code=status, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


def _token_url(request: Request) -> str:
    """This endpoint's URL as the client reached it (behind a trusted proxy, as the proxy was reached)."""
    return str(request.url.replace(query="", fragment=""))


async def _grant(db, request: Request, field: dict[str, str], basic: tuple[str, str] | None):
    """Dispatch to the grant the form names; (body, subject) or a GrantError."""
    secrets, grant, scope = request.app.state.secrets, field.get("grant_type"), field.get("scope")
    client_id = basic[0] if basic else field.get("client_id")
    if grant == "client_credentials" and "client_assertion_type" in field:
        if field["client_assertion_type"] != assertions.JWT_BEARER:
            raise tokens.GrantError("invalid_client", f"client_assertion_type must be {assertions.JWT_BEARER}.", 401)
        if not field.get("client_assertion") or basic or field.get("client_secret"):
            raise tokens.GrantError("invalid_request", "Send one client_assertion and no client secret.")
        return await tokens.assertion_grant(db, secrets, request.app.state.key_sets, field["client_assertion"],
                                            _token_url(request), field.get("client_id"), scope)
    if grant == "password" and field.get("username") and field.get("password"):
        return await tokens.password_grant(db, secrets, field["username"], field["password"], scope)
    if grant == "refresh_token" and field.get("refresh_token"):
        return await tokens.refresh_grant(db, secrets, field["refresh_token"], scope)
    if grant == "client_credentials" and client_id and (basic or field.get("client_secret")):
        client_secret = basic[1] if basic else field["client_secret"]
        return await tokens.client_credentials_grant(db, secrets, client_id, client_secret, scope)
    if grant not in ("password", "refresh_token", "client_credentials"):
        raise tokens.GrantError("unsupported_grant_type", "Use password, refresh_token or client_credentials.")
    raise tokens.GrantError("invalid_request", f"The {grant} grant is missing a required field.")


def _login_event(request: Request, subject: tokens.Subject | None, status: int, **details: object) -> dict:
    note = AuditNote(details=details)
    event = audit.event_for(request, note, status, "/v1/auth/token")
    event["action"] = "login" if status == 200 else "login_failed"  # a refused client (401) too, not "denied"
    if subject is not None:
        event |= {"actor_type": subject[0], "actor_id": subject[1], "organization_id": subject[2],
                  "resource_type": subject[0], "resource_id": subject[1]}
    else:
        event |= {"resource_type": None, "resource_id": None}
    return event


@router.post(
    "/v1/auth/token",
    response_model=TokenResponse,
    responses={**_OAUTH_ERRORS, **errors(413, 429, 503)},
    openapi_extra=_TOKEN_FORM,
)
async def issue_token(request: Request) -> Response:
    """Exchange a password, a refresh token, client credentials or a signed client assertion for an access token.

    A client assertion (``client_assertion_type`` jwt-bearer, SMART Backend Services) is refused
    with ``invalid_client`` (401) when it is malformed, expired, replayed, for another audience,
    signed by an unregistered key or with another algorithm than RS384/ES384; each refusal is audited.
    """
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _oauth_error("invalid_request", "Send the request form-encoded (application/x-www-form-urlencoded).")
    form = await request.form()
    field = {k: v for k, v in form.items() if isinstance(v, str)}
    basic = _basic_credentials(request)
    if any("\x00" in value for value in [*field.values(), *(basic or ())]):
        # No credential holds NUL, and PostgreSQL cannot even compare text holding it.
        return _oauth_error("invalid_request", "A field contains a NUL character.")
    grant = field.get("grant_type")
    account = field.get("username") if grant == "password" else basic[0] if basic else field.get("client_id")
    if grant == "client_credentials" and field.get("client_assertion"):
        account = tokens.assertion_issuer(field["client_assertion"])  # throttled and audited by the client it names
    engine = request.app.state.engine
    try:
        attempt = await throttle.admit(request, grant, account)
    except throttle.Throttled as refused:
        async with transaction(engine, write=True) as db:
            subject = await tokens.named_subject(db, grant, account)
            await audit.record(db, _login_event(request, subject, 429, throttled=refused.budgets))
        raise RateLimited(refused.retry_after) from None
    failure: tokens.GrantError | None = None
    try:
        async with transaction(engine, write=True) as db:
            try:
                body, subject = await _grant(db, request, field, basic)
                await audit.record(db, _login_event(request, subject, 200))
            except tokens.GrantError as exc:
                failure = exc
                if not exc.commit:
                    await db.rollback()  # nothing of the attempt is kept, except its audit event below
    finally:
        await attempt.settle(failure.error if failure else None)
    if failure is not None:
        async with transaction(engine, write=True) as db:
            reason = {"reason": failure.reason} if failure.reason else {}
            await audit.record(db, _login_event(request, failure.subject, failure.status, **reason))
        return _oauth_error(failure.error, failure.description, failure.status)
    return JSON(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@me_router.get("/v1/me", response_model=Me, responses=errors(401, 503))
async def read_me(principal: CurrentPrincipal) -> JSON:
    """Who the token belongs to, with its roles and effective scopes."""
    return JSON(
        {
            "type": principal.kind,
            "id": principal.id,
            "organization_id": principal.organization_id,
            "roles": list(principal.roles),
            "scopes": sorted(principal.scopes),
        }
    )


@router.get("/.well-known/jwks.json", responses=errors(404))
async def read_jwks(request: Request) -> JSON:
    """The public keys that verify access tokens (only with RS256 or ES256)."""
    keys = request.app.state.secrets.jwks()
    if keys is None:
        raise NotFound("Tokens are signed with a shared secret (HS256): there is no public key to publish.")
    return JSON(keys)


@router.get("/.well-known/smart-configuration", response_model=SmartConfiguration)
@router.get("/fhir/r4/.well-known/smart-configuration", response_model=SmartConfiguration, include_in_schema=False)
async def read_smart_configuration(request: Request) -> JSON:
    """SMART App Launch discovery for Backend Services: the token endpoint, its client authentication, the scopes."""
    base = str(request.base_url).rstrip("/")
    return JSON(smart.configuration(base, SCOPES), headers={"Cache-Control": "public, max-age=3600"})
