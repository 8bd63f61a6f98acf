"""Standard Webhooks signatures and the guard against delivering to private addresses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from app.core.outbound import check_public_url


def new_secret() -> str:
    """A signing secret in Standard Webhooks' ``whsec_<base64>`` form (24 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def check_url(url: str, allow_private: bool) -> None:
    """Refuse webhook URLs that are not http(s) or that resolve to private, loopback or link-local addresses."""
    check_public_url(url, allow_private, what="webhook URL", loc=["url"])
