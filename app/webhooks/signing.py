"""Standard Webhooks signatures and the guard against delivering to private addresses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from urllib.parse import urlsplit

from app.core.errors import Unprocessable


def new_secret() -> str:
    """A signing secret in Standard Webhooks' ``whsec_<base64>`` form (24 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved)


def check_url(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s) or that resolve to private, loopback or link-local addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise Unprocessable("The webhook URL must be an http(s) URL without credentials.",
                            errors=[{"loc": ["url"], "message": "not an http(s) URL"}])
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise Unprocessable("The webhook URL's host does not resolve.",
                            errors=[{"loc": ["url"], "message": "host does not resolve"}]) from None
    if not infos or not all(_is_public(info[4][0]) for info in infos):
        raise Unprocessable("The webhook URL resolves to a private, loopback or link-local address.",
                            errors=[{"loc": ["url"], "message": "private address refused"}])
