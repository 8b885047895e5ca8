"""Serving an ASGI app (the Starlette site) from granian's RSGI interface.

The photo hot path speaks RSGI directly (it measured ~20% less server CPU per request than
granian's ASGI, see BENCHMARKS.md); everything else is handed to the ASGI site through this
bridge. Request bodies are read whole before the app runs (the site's forms and uploads are
bounded by [limits] max_bytes); responses go out in one piece, or streamed when the app sends
`more_body`. Not bridged: websockets (the site has none) and lifespan events (site modules
must initialise lazily, not in startup hooks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]
]


def _address(text: str | None) -> tuple[str, int] | None:
    """'127.0.0.1:8080' or '[::1]:8080' → (host, port)."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return text, 0


def asgi_scope(scope: Any) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "raw_path": scope.path.encode("utf-8", "surrogateescape"),
        "query_string": scope.query_string.encode("latin-1", "replace"),
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1", "replace"), value.encode("latin-1", "replace"))
            for name, value in scope.headers.items()
        ],
        "client": _address(scope.client),
        "server": _address(scope.server),
        "extensions": {},
    }


async def serve_asgi(app: ASGIApp, scope: Any, proto: Any) -> None:
    """Run one HTTP request of `app` on an RSGI protocol object."""
    body = await proto()
    delivered = False
    finished = asyncio.Event()
    status = 500
    headers: list[tuple[str, str]] = []
    started = False
    stream: Any = None

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # only a disconnect can follow the body
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status, headers, started, stream
        kind = message["type"]
        if kind == "http.response.start":
            status = message["status"]
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            ]
            started = True
        elif kind == "http.response.body" and not finished.is_set():
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if stream is None and not more:
                proto.response_bytes(status, headers, chunk)
                finished.set()
                return
            if stream is None:
                stream = proto.response_stream(status, headers)
            if chunk:
                await stream.send_bytes(chunk)
            if not more:
                finished.set()

    try:
        await app(asgi_scope(scope), receive, send)
    finally:
        if not finished.is_set():
            finished.set()
            if stream is None and started:  # a start without a final body: send it empty
                proto.response_bytes(status, headers, b"")
            elif stream is None:
                proto.response_bytes(500, [("content-type", "text/plain")], b"Internal error.\n")
