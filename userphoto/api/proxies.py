"""Who the client is behind a reverse proxy: `[server] trusted_proxies`.

A request's `X-Forwarded-For` / `-Proto` / `-Host` (or RFC 7239 `Forwarded`) headers are
believed only when the connection comes from a listed proxy (CIDRs; none by default, so a
client can never spoof its address or scheme). The client is then the rightmost address in the
chain that is not a trusted proxy itself (every hop left of it could be made up by the
client); the scheme and host are the ones the nearest proxy saw.

Effects: the access log's `client`, `request.client` / `url` / `base_url` in the site (so
redirects and `Secure` cookies follow the public https URL), and the request scope's
`userphoto.client` for anything that records who asked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

MEMO_LIMIT = 4096  # peer addresses remembered with their verdict (behind a proxy: a handful)
CLIENT = "userphoto.client"  # scope key: the client's address as believed
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")


class TrustedProxies:
    def __init__(self, cidrs: list[str] | tuple[str, ...] = ()):
        self.nets = [ipaddress.ip_network(str(c).strip(), strict=False) for c in cidrs]
        self._verdicts: dict[str, bool] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> TrustedProxies:
        return cls(list(settings.server.trusted_proxies))

    def trusts(self, address: str) -> bool:
        verdict = self._verdicts.get(address)
        if verdict is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            verdict = any(ip in net for net in self.nets)
            if len(self._verdicts) < MEMO_LIMIT:
                self._verdicts[address] = verdict
        return verdict

    def resolve(
        self, peer: str, header: Callable[[str], str | None]
    ) -> tuple[str, str | None, str | None]:
        """(client address, public scheme or None, public host or None) of a request from
        `peer`; `header(name)` gives a request header's values joined by commas, or None."""
        if not self.nets or not self.trusts(peer):
            return peer, None, None
        forwarded = header("forwarded")
        if forwarded:
            hops, proto, host = _parse_forwarded(forwarded)
        else:
            hops = (header("x-forwarded-for") or "").split(",")
            proto = _last(header("x-forwarded-proto"))
            host = _last(header("x-forwarded-host"))
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:  # "unknown", an obfuscated name or junk: believe no further
                break
            client = address
            if not self.trusts(address):
                break
        proto = proto.lower() if proto and proto.lower() in ("http", "https") else None
        if host and (len(host) > 255 or not set(host) <= _HOST_CHARS):
            host = None
        return client, proto, host

    def rewrite(self, scope: Scope) -> str:
        """Apply what the proxy says to an ASGI scope (once); the client's address."""
        known = scope.get(CLIENT)
        if known is not None:
            return str(known)
        peer = scope["client"][0] if scope.get("client") else ""
        if not self.nets:
            scope[CLIENT] = peer
            return peer

        def header(name: str) -> str | None:
            wanted = name.encode()
            values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == wanted]
            return ",".join(values) if values else None

        client, proto, host = self.resolve(peer, header)
        scope[CLIENT] = client
        if client != peer:
            scope["client"] = (client, 0)
        if proto is not None:
            scope["scheme"] = proto
        if host is not None:
            kept = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
            scope["headers"] = [(b"host", host.encode("latin-1")), *kept]
        return client


class ProxyHeaders:
    """ASGI middleware: `TrustedProxies.rewrite` before the app sees the request."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies):
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.proxies.rewrite(scope)
        await self.app(scope, receive, send)


def _last(value: str | None) -> str | None:
    """The value the nearest proxy added (the last of a comma-separated list)."""
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def _address(hop: str) -> str | None:
    """An X-Forwarded-For / Forwarded `for=` hop as a plain IP address (port and brackets
    dropped), or None when it is not one."""
    text = hop.strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _parse_forwarded(value: str) -> tuple[list[str], str | None, str | None]:
    """RFC 7239: the `for=` of each element in order, and the `proto=` / `host=` of the
    last element (the nearest proxy's)."""
    hops: list[str] = []
    proto = host = None
    for element in value.split(","):
        proto = host = None
        found_for = False
        for pair in element.split(";"):
            name, _, raw = pair.partition("=")
            name, raw = name.strip().lower(), raw.strip().strip('"')
            if name == "for":
                hops.append(raw)
                found_for = True
            elif name == "proto":
                proto = raw
            elif name == "host":
                host = raw
        if not found_for:
            hops.append("unknown")
    return hops, proto, host
