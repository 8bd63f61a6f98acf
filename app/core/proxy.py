"""Behind a reverse proxy: believe X-Forwarded-* (or RFC 7239 Forwarded) only from the proxies the operator trusts.

Installed outermost, and only when ``IPT_TRUSTED_PROXIES`` names some, it rewrites the scope before any
other layer reads it: ``client`` (audit address, rate limits, sign-in throttling), ``scheme`` and the Host
header (``request.base_url``: FHIR fullUrls, the CapabilityStatement, redirects' Location), as werkzeug's
ProxyFix does. From any other peer the headers are left as sent and never read.

The client is the right-most address that is not itself a trusted proxy: walk the hops from the TCP
peer leftwards while the current hop is trusted. An entry that is not an IP address (``unknown``, an
obfuscated ``_id``, garbage) stops the walk at the last hop known, so whatever a client wrote to the
left of it is never read. Only one header family is read (``IPT_PROXY_HEADERS``): a proxy that writes
one family usually passes the other through from the client untouched (nginx passes ``Forwarded``),
so preferring either one whenever both are present would let a client choose its own address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Family = Literal["x-forwarded", "forwarded"]
_HOST = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# RFC 7239's grammar as lexemes: a forwarded-pair, the two separators, blanks, and anything else (garbage).
_LEXEME = re.compile(rf'({_TOKEN})=({_TOKEN}|{_QUOTED})|(,)|(;)|[ \t]+|[^,; \t]+')
_SCHEMES = {"http": "http", "https": "https"}
_X_FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
_FORWARDED = (b"forwarded",)
_WS = {"http": "ws", "https": "wss"}


def parse_address(text: str) -> Address | None:
    """An IP address from a header or a socket (IPv4-mapped IPv6 as IPv4), else None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=8192)  # clients come back: each address text is parsed once (ipaddress takes ~2 us)
def _canonical(text: str) -> str | None:
    """An address as ipaddress writes it (``parse_address``), else None."""
    address = parse_address(text)
    return None if address is None else str(address)


class TrustedProxies:
    """The trusted proxies, parsed once: a set of exact addresses, and networks only when some were given."""

    def __init__(self, entries: Iterable[str]) -> None:
        parsed = [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]  # ValueError: a bad entry
        self.addresses = frozenset(str(n.network_address) for n in parsed if n.num_addresses == 1)
        self.networks = tuple(n for n in parsed if n.num_addresses > 1)
        # Per instance, bounded: the hosts seen are the proxies and their clients, over and over.
        self._in_networks = lru_cache(maxsize=8192)(self._in_networks)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.networks)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (a socket's address text, or a header's as ``parse_address`` wrote it) is trusted."""
        if host in self.addresses:
            return True
        if host.startswith("::ffff:"):  # an IPv4 peer on a dual-stack socket
            return self.trusts(host[7:])
        return bool(self.networks) and self._in_networks(host)

    def _in_networks(self, host: str) -> bool:
        address = parse_address(host)
        return address is not None and any(address in network for network in self.networks)


def forwarded_elements(value: str) -> list[dict[str, str] | None]:
    """RFC 7239 ``Forwarded`` as its hops, left to right: ``{param: value}`` (names lower-cased), None if malformed.

    A malformed element spoils only itself, so a client's garbage cannot hide the hops proxies appended after it.
    """
    elements: list[dict[str, str] | None] = []
    current: dict[str, str] | None = {}
    expect_pair = True  # pairs are separated by ";": "for=a proto=b" is malformed
    for lexeme in _LEXEME.finditer(value):
        name, raw, comma, semicolon = lexeme.groups()
        if comma or semicolon:
            if comma:
                if current is None or current:  # empty elements are allowed (RFC 9110 5.6.1)
                    elements.append(current)
                current = {}
            expect_pair = True
        elif name is not None and current is not None:
            name = name.lower()
            if not expect_pair or name in current:
                current = None
            else:
                current[name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
                expect_pair = False
        elif name is None and not lexeme.group().isspace():
            current = None
    if current is None or current:
        elements.append(current)
    return elements


def _node_address(node: str) -> tuple[Address, int] | None:
    """A ``for`` node of RFC 7239 (``192.0.2.43``, ``"[2001:db8::17]:4711"``) as (address, port); None otherwise."""
    port = 0
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        port = int(rest[1:]) if rest else 0
    else:
        host, colon, rest = node.partition(":")
        if colon:
            if not rest.isdigit():
                return None
            port = int(rest)
    address = parse_address(host)
    if address is None or (node[:1] != "[" and address.version == 6) or port > 65535:
        return None
    return address, port


def _header_values(headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> dict[bytes, str]:
    """The wanted headers, in one pass, each header's field lines joined by commas (RFC 9110 5.3)."""
    found: dict[bytes, str] = {}
    for key, value in headers:
        if key in names:
            text = value.decode("latin-1")
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def _host(value: str | None) -> str | None:
    """A host[:port] fit for a URL, else None (so garbage never reaches request.base_url)."""
    if value is None:
        return None
    value = value.strip()
    return value if len(value) <= 255 and _HOST.match(value) else None


Resolved = tuple[tuple[str, int] | None, str | None, str | None]  # client (address, port), scheme, host; None: unsaid


def resolve(trusted: TrustedProxies, family: Family, peer: str, headers: list[tuple[bytes, bytes]]) -> Resolved:
    """Who sent the request, by what scheme to which host, according to the trusted proxies in front of ``peer``."""
    if family == "forwarded":
        return _resolve_forwarded(trusted, peer, headers)
    return _resolve_x_forwarded(trusted, peer, headers)


def _resolve_x_forwarded(trusted: TrustedProxies, peer: str, headers: list[tuple[bytes, bytes]]) -> Resolved:
    found = _header_values(headers, _X_FORWARDED)
    client: tuple[str, int] | None = None
    if (hops := found.get(b"x-forwarded-for")) is not None:
        current = peer
        for entry in reversed(hops.split(",")):
            if not trusted.trusts(current) or (current := _canonical(entry)) is None:
                break
            client = (current, 0)
    # Proto and host carry no hops of their own: the right-most value is the one the nearest proxy set.
    proto, host = found.get(b"x-forwarded-proto"), found.get(b"x-forwarded-host")
    scheme = _SCHEMES.get(proto.rsplit(",", 1)[-1].strip().lower()) if proto else None
    return client, scheme, _host(host.rsplit(",", 1)[-1]) if host else None


def _resolve_forwarded(trusted: TrustedProxies, peer: str, headers: list[tuple[bytes, bytes]]) -> Resolved:
    value = _header_values(headers, _FORWARDED).get(b"forwarded")
    client: tuple[str, int] | None = None
    current = peer
    teller: dict[str, str] | None = None  # the hop written by the outermost trusted proxy reached
    for element in reversed(forwarded_elements(value) if value else []):
        if element is None or not trusted.trusts(current):
            break
        teller = element
        if (node := _node_address(element.get("for", ""))) is None:
            break
        current = str(node[0])
        client = (current, node[1])
    if teller is None:
        return None, None, None
    # proto and host say how the client's request reached that proxy (RFC 7239 5.3, 5.4).
    return client, _SCHEMES.get(teller.get("proto", "").lower()), _host(teller.get("host"))


class ProxyHeadersMiddleware:
    """Rewrite client, scheme and Host from a trusted proxy's forwarding headers; others' are ignored."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies, family: Family = "x-forwarded") -> None:
        self.app = app
        self.trusted = trusted
        self.family: Family = family

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        client = scope.get("client")
        if kind in ("http", "websocket") and client and self.trusted.trusts(client[0]):
            headers = scope["headers"]
            client, scheme, host = resolve(self.trusted, self.family, client[0], headers)
            if client is not None:
                scope["client"] = client
            if scheme is not None:
                scope["scheme"] = scheme if kind == "http" else _WS[scheme]
            if host is not None:
                scope["headers"] = [(b"host", host.encode()), *(h for h in headers if h[0] != b"host")]
        await self.app(scope, receive, send)
