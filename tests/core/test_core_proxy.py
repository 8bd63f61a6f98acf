"""Forwarding headers: believed only from trusted proxies, walked from the right, garbage ignored (no database)."""

from __future__ import annotations

import ipaddress
import random
import re

import httpx
import pytest

from app.core.config import ConfigError, Settings
from app.core.proxy import ProxyHeadersMiddleware, TrustedProxies, forwarded_elements, resolve

TRUSTED = TrustedProxies(["127.0.0.2", "10.0.0.0/8", "2001:db8:ffff::/48"])


def _said(headers: dict[str, str] | list[tuple[str, str]], family: str = "x-forwarded", peer: str = "127.0.0.2"):
    pairs = headers.items() if isinstance(headers, dict) else headers
    return resolve(TRUSTED, family, peer, [(k.lower().encode(), v.encode()) for k, v in pairs])


def test_trusted_proxies_keep_single_hosts_in_a_set_and_networks_apart():
    trusted = TrustedProxies(["127.0.0.2", "::1/128", " 10.0.0.1/8 "])
    assert trusted.addresses == {"127.0.0.2", "::1"}
    assert [str(n) for n in trusted.networks] == ["10.0.0.0/8"]
    assert trusted.trusts("127.0.0.2") and trusted.trusts("::ffff:127.0.0.2") and trusted.trusts("10.200.0.1")
    assert not trusted.trusts("127.0.0.3") and not trusted.trusts("garbage") and not trusted.trusts("")
    assert not TrustedProxies([])
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.300"])


def test_settings_read_trusted_proxies_comma_separated_and_refuse_a_bad_entry(monkeypatch):
    monkeypatch.setenv("IPT_TRUSTED_PROXIES", "127.0.0.2, 10.0.0.0/8,::1")
    monkeypatch.setenv("IPT_CORS_ORIGINS", "https://a.example,https://b.example")
    settings = Settings(env="test")
    assert settings.trusted_proxies == ["127.0.0.2", "10.0.0.0/8", "::1"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.proxy_headers == "x-forwarded"
    monkeypatch.setenv("IPT_TRUSTED_PROXIES", "127.0.0.2,proxy.internal")
    with pytest.raises(ConfigError, match="proxy.internal"):
        Settings(env="test")


def test_x_forwarded_for_from_one_proxy_names_the_client():
    assert _said({"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.clinic.example"}) == (
        ("203.0.113.7", 0), "https", "api.clinic.example")


def test_x_forwarded_for_is_walked_from_the_right_past_trusted_proxies_only():
    # A client's own "1.1.1.1" is left of what the proxies appended: never read.
    assert _said({"X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.1.2.3, 10.9.9.9"})[0] == ("203.0.113.7", 0)
    # Several header lines are one list (RFC 9110 5.3), in order.
    assert _said([("X-Forwarded-For", "1.1.1.1, 203.0.113.7"), ("X-Forwarded-For", "10.1.2.3")])[0] == ("203.0.113.7", 0)
    # Every hop trusted: the client is the farthest one.
    assert _said({"X-Forwarded-For": "10.0.0.5, 10.0.0.6"})[0] == ("10.0.0.5", 0)


def test_ipv6_hops_are_normalised_and_matched_against_networks():
    assert _said({"X-Forwarded-For": "2001:DB8:0:0::7, 2001:db8:ffff::1"})[0] == ("2001:db8::7", 0)
    assert _said({"X-Forwarded-For": "::ffff:203.0.113.9"})[0] == ("203.0.113.9", 0)
    assert _said({"X-Forwarded-For": "203.0.113.9"}, peer="2001:db8:ffff::2")[0] == ("203.0.113.9", 0)


def test_an_entry_that_is_not_an_address_stops_the_walk_at_the_last_trusted_hop():
    for garbage in ("unknown", "_hidden", "", "203.0.113.7:80", "1.2.3.4.5", "<script>", "ｆｕｌｌwidth"):
        assert _said({"X-Forwarded-For": f"198.51.100.1, {garbage}, 10.0.0.9"})[0] == ("10.0.0.9", 0), garbage
        assert _said({"X-Forwarded-For": garbage})[0] is None, garbage  # the peer stays the client
    # Garbage left of the client is never looked at.
    assert _said({"X-Forwarded-For": "not an address, 203.0.113.7"})[0] == ("203.0.113.7", 0)


def test_proto_and_host_take_the_nearest_proxys_value_and_refuse_what_no_url_can_hold():
    assert _said({"X-Forwarded-Proto": "http, HTTPS", "X-Forwarded-Host": "evil.example, api.clinic.example:8443"})[1:] == (
        "https", "api.clinic.example:8443")
    assert _said({"X-Forwarded-Host": "[2001:db8::1]:443"})[2] == "[2001:db8::1]:443"
    for scheme in ("ftp", "javascript", "https://", ""):
        assert _said({"X-Forwarded-Proto": scheme})[1] is None, scheme
    for host in ("evil.example/path", "user@evil.example", "a b", "evil.example:port", "x" * 300, "evil.example\\"):
        assert _said({"X-Forwarded-Host": host})[2] is None, host


def test_forwarded_pairs_quoted_strings_and_empty_elements_parse_as_rfc_7239_says():
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, , For="[2001:db8:cafe::17]:4711";HOST="a\\"b"'
    assert forwarded_elements(value) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711", "host": 'a"b'},
    ]


def test_a_malformed_forwarded_element_spoils_only_itself():
    value = 'garbage"x, for=1.2.3.4;proto=https, for=a proto=b, for=1;for=2, for=, for=5.6.7.8'
    assert forwarded_elements(value) == [None, {"for": "1.2.3.4", "proto": "https"}, None, None, None, {"for": "5.6.7.8"}]


def test_forwarded_names_the_client_with_its_port_and_the_scheme_and_host_it_used():
    header = 'for=198.51.100.1;proto=http, for="[2001:db8::9]:4711";proto=https;host=api.clinic.example, for=10.0.0.3;proto=http'
    assert _said({"Forwarded": header}, "forwarded") == (("2001:db8::9", 4711), "https", "api.clinic.example")
    assert _said({"Forwarded": 'for="203.0.113.7:8080"'}, "forwarded")[0] == ("203.0.113.7", 8080)
    assert _said({"Forwarded": "for=203.0.113.7:8080"}, "forwarded")[0] is None  # ":" needs quotes (RFC 7239 4)


def test_forwarded_obfuscated_or_unknown_nodes_stop_at_the_last_trusted_hop():
    for node in ("_hidden", "unknown", '"_SEVKISEK:_47"', '"[2001:db8::1"', '"2001:db8::1"', '"203.0.113.7:99999"', '"[::1]x"'):
        header = f"for={node};proto=https;host=api.clinic.example, for=10.0.0.3"
        assert _said({"Forwarded": header}, "forwarded") == (("10.0.0.3", 0), "https", "api.clinic.example"), node
    # An element that breaks the grammar (an unquoted IPv6 node) is not read at all, proto and host included.
    header = "for=2001:db8::1;proto=https;host=api.clinic.example, for=10.0.0.3"
    assert _said({"Forwarded": header}, "forwarded") == (("10.0.0.3", 0), None, None)
    # A garbage hop right after the peer: nothing believed from it, the peer stays the client.
    assert _said({"Forwarded": "for=203.0.113.7, nonsense"}, "forwarded") == (None, None, None)


def test_only_the_configured_header_family_is_read():
    both = {"Forwarded": "for=198.51.100.1;proto=https;host=forwarded.example",
            "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "x-forwarded.example"}
    assert _said(both, "x-forwarded") == (("203.0.113.7", 0), "https", "x-forwarded.example")
    assert _said(both, "forwarded") == (("198.51.100.1", 0), "https", "forwarded.example")


def test_random_garbage_never_raises_and_never_yields_an_invalid_address():
    rng = random.Random(18)
    alphabet = 'abcf09.:[]";,=_ \t\\/-%\x00\xff'
    for _ in range(3000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for family, name in (("x-forwarded", "X-Forwarded-For"), ("forwarded", "Forwarded")):
            client, scheme, host = _said({name: value, "X-Forwarded-Host": value}, family)
            assert client is None or str(ipaddress.ip_address(client[0])) == client[0]
            assert scheme in (None, "http", "https")
            assert host is None or re.fullmatch(r"[A-Za-z0-9._:\[\]-]+", host)


async def _echo(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    host = dict(scope["headers"]).get(b"host", b"").decode()
    await send({"type": "http.response.body", "body": f"{scope['client'][0]} {scope['scheme']} {host}".encode()})


async def _seen(peer: str, headers: dict[str, str]) -> str:
    app = ProxyHeadersMiddleware(_echo, TRUSTED)
    transport = httpx.ASGITransport(app=app, client=(peer, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as http:
        return (await http.get("/", headers=headers)).text


async def test_middleware_rewrites_the_scope_for_a_trusted_peer_only():
    spoof = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.clinic.example",
             "Forwarded": "for=198.51.100.1;proto=https;host=evil.example"}
    assert await _seen("127.0.0.2", spoof) == "203.0.113.7 https api.clinic.example"
    assert await _seen("127.0.0.1", spoof) == "127.0.0.1 http internal:8000"
    assert await _seen("127.0.0.2", {"X-Forwarded-Host": "bad/host"}) == "127.0.0.2 http internal:8000"


def test_the_middleware_is_installed_outermost_and_only_when_proxies_are_trusted(tmp_path):
    from app.main import create_app
    from tests.conftest import test_settings

    url = f"sqlite:///{tmp_path / 'unused.db'}"  # never connected to
    plain = create_app(test_settings(url))
    assert ProxyHeadersMiddleware not in [m.cls for m in plain.user_middleware]
    proxied = create_app(test_settings(url, trusted_proxies=["127.0.0.2"]))
    assert proxied.user_middleware[0].cls is ProxyHeadersMiddleware
