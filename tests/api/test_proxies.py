"""`[server] trusted_proxies`: which forwarded headers are believed, read by the real parser
(the HTTP behaviour over sockets is in test_serve_proxy.py and test_deploy_nginx.py)."""

from __future__ import annotations

from userphoto.api.proxies import TrustedProxies


def headers(**values: str):
    named = {k.replace("_", "-").lower(): v for k, v in values.items()}
    return lambda name: named.get(name)


def test_nothing_is_believed_by_default_or_from_an_untrusted_peer() -> None:
    spoof = headers(X_Forwarded_For="1.2.3.4", X_Forwarded_Proto="https", Forwarded="for=5.6.7.8")
    assert TrustedProxies().resolve("10.0.0.5", spoof) == ("10.0.0.5", None, None)
    trusting = TrustedProxies(["192.168.0.0/16"])
    assert trusting.resolve("10.0.0.5", spoof) == ("10.0.0.5", None, None)


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "::1/128"])
    chain = headers(X_Forwarded_For="6.6.6.6, 203.0.113.9, 10.0.0.7", X_Forwarded_Proto="https")
    assert proxies.resolve("10.0.0.1", chain) == ("203.0.113.9", "https", None)
    # Only trusted hops: the leftmost one is as far as the chain can be believed.
    inner = headers(X_Forwarded_For="10.0.0.9, 10.0.0.8")
    assert proxies.resolve("::1", inner)[0] == "10.0.0.9"
    # Junk stops the walk at the last address believed.
    junk = headers(X_Forwarded_For="203.0.113.1, not-an-ip, 10.0.0.8")
    assert proxies.resolve("10.0.0.1", junk)[0] == "10.0.0.8"


def test_forwarded_wins_and_its_nearest_element_gives_scheme_and_host() -> None:
    proxies = TrustedProxies(["127.0.0.1/32"])
    value = (
        'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711";proto=https;host=photos.example'
    )
    both = headers(Forwarded=value, X_Forwarded_For="9.9.9.9")
    assert proxies.resolve("127.0.0.1", both) == ("2001:db8:cafe::17", "https", "photos.example")
    hidden = headers(Forwarded="for=_hidden;proto=https")
    assert proxies.resolve("127.0.0.1", hidden) == ("127.0.0.1", "https", None)


def test_a_scheme_or_host_that_is_not_one_is_dropped() -> None:
    proxies = TrustedProxies(["127.0.0.1/32"])
    bad = headers(X_Forwarded_Proto="javascript", X_Forwarded_Host="evil.example/\r\nSet-Cookie:")
    assert proxies.resolve("127.0.0.1", bad) == ("127.0.0.1", None, None)
    ported = headers(X_Forwarded_For="198.51.100.4:5555", X_Forwarded_Host="a.example:8443")
    assert proxies.resolve("127.0.0.1", ported) == ("198.51.100.4", None, "a.example:8443")
