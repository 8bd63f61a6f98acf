"""The guard on every URL the service itself calls (webhooks, integrations' key sets): public addresses only."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.core.errors import Unprocessable


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved)


def check_public_url(url: str, allow_private: bool, *, what: str, loc: list[str]) -> None:
    """Refuse URLs that are not http(s) or that resolve to private, loopback or link-local addresses (422)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise Unprocessable(f"The {what} must be an http(s) URL without credentials.",
                            errors=[{"loc": loc, "message": "not an http(s) URL"}])
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise Unprocessable(f"The {what}'s host does not resolve.",
                            errors=[{"loc": loc, "message": "host does not resolve"}]) from None
    if not infos or not all(_is_public(info[4][0]) for info in infos):
        raise Unprocessable(f"The {what} resolves to a private, loopback or link-local address.",
                            errors=[{"loc": loc, "message": "private address refused"}])
