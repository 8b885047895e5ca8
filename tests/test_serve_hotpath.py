"""The hot path's promise: once warm, no store access and no image work per request."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from userphoto import auth, imaging
from userphoto.api import default_picture
from userphoto.api.server import PhotoServer
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import Picture, User, Visibility
from userphoto.store.base import Store

URLS = [
    ("/v1/users/ada@hot.test/photo", b"size=240"),
    ("/v1/users/ada@hot.test/photo/meta", b""),
    ("/v1/users/ivy@hot.test/photo", b"size=64"),
    ("/v1.0/users/ada@hot.test/photo/$value", b""),
    ("/v1.0/me/photos", b""),
    ("/ews/Exchange.asmx/s/GetUserPhoto", b"email=ada@hot.test&size=HR96x96"),
    ("/avatar/" + hashlib.md5(b"ada@hot.test").hexdigest(), b"s=77"),
    ("/avatar/" + "0" * 32, b"d=identicon&s=33"),
]


async def call(server: PhotoServer, path: str, query: bytes, token: str, inm: bytes = b"") -> dict:
    headers = [(b"host", b"x"), (b"authorization", f"Bearer {token}".encode())]
    if inm:
        headers.append((b"if-none-match", inm))
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": headers,
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await server(scope, receive, send)
    start, body = sent
    return {"status": start["status"], "headers": dict(start["headers"]), "body": body["body"]}


@pytest.fixture
def hot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    app = App(Settings.load(tmp_path))
    app.store.add_user(
        User(
            id="u-ada",
            address="ada@hot.test",
            display_name="Ada Hot",
            visibility=Visibility.EVERYONE,
        )
    )
    app.store.add_user(
        User(id="u-ivy", address="ivy@hot.test", display_name="Ivy Hot", picture=Picture.DEFAULT)
    )
    app.store.add_user(User(id="u-bo", address="bo@hot.test", display_name="Bo Hot"))
    app.photos.set("ada@hot.test", portrait(1, 700, 700))
    _r, token = auth.create_token(app.store, "ada@hot.test")
    server = PhotoServer(app, poll=False)
    calls: Counter[str] = Counter()

    store = app.store
    for name in Store.__abstractmethods__:
        original = getattr(store, name)

        def counted(*a, _name=name, _original=original, **kw):
            calls[_name] += 1
            return _original(*a, **kw)

        monkeypatch.setattr(store, name, counted, raising=False)
    for module, name in (
        (imaging, "resize_jpeg"),
        (imaging, "encode_jpeg"),
        (default_picture, "encode_jpeg"),
    ):
        original = getattr(module, name)

        def counted_image(*a, _name=name, _original=original, **kw):
            calls["image:" + _name] += 1
            return _original(*a, **kw)

        monkeypatch.setattr(module, name, counted_image)
    yield server, token, calls, app
    app.close()


def test_warm_requests_touch_neither_store_nor_images(hot) -> None:
    server, token, calls, _app = hot

    async def run() -> None:
        for path, query in URLS:
            first = await call(server, path, query, token)
            assert first["status"] == 200, (path, first["body"][:200])
        assert calls, "the cold pass must have read the store"
        calls.clear()
        for _ in range(20):
            for path, query in URLS:
                answer = await call(server, path, query, token)
                assert answer["status"] == 200
                again = await call(server, path, query, token, answer["headers"][b"etag"])
                assert again["status"] == 304

    asyncio.run(run())
    assert calls == Counter()


def test_a_change_drops_the_cache_and_bodies_are_shared(hot) -> None:
    server, token, calls, app = hot

    async def run() -> tuple[dict, dict, dict]:
        a = await call(server, "/v1/users/ada@hot.test/photo", b"size=96", token)
        b = await call(server, "/v1/users/u-ada/photo", b"size=HR96x96", token)
        app.photos.set("ada@hot.test", portrait(2, 700, 700))
        server.refresh()  # what the poller does every 200 ms
        calls.clear()
        c = await call(server, "/v1/users/ada@hot.test/photo", b"size=96", token)
        return a, b, c

    a, b, c = asyncio.run(run())
    assert a["body"] is b["body"]  # one object for identical bytes, whatever the URL
    assert c["headers"][b"etag"] != a["headers"][b"etag"]
    assert calls["get_rendition"] == 1


def test_cache_is_bounded_in_bytes(hot) -> None:
    server, token, _calls, _app = hot
    server.cache.max_bytes = 20_000

    async def run() -> None:
        for size in range(40, 90):
            await call(
                server,
                "/avatar/" + hashlib.md5(b"ada@hot.test").hexdigest(),
                f"s={size}".encode(),
                token,
            )
            assert server.cache.bytes <= 20_000

    asyncio.run(run())
    assert 0 < len(server.cache.answers) < 50


class FakeTransport:
    """What `Connection` writes, without a socket (the real socket is in test_serve.py)."""

    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str) -> None:
        return None


def test_http_server_hot_path_is_as_lean(hot) -> None:
    """The HTTP server's inline path (no ASGI): warm answers touch no store and no image code,
    pipelined requests are answered in order, and If-None-Match gives a bodiless 304."""
    from userphoto.api.http import Connection

    server, token, calls, _app = hot

    async def exchange(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
        conn = Connection(server, max_body=server.max_body)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(raw)
        conn.connection_lost(None)
        return parse(transport.out)

    def request(path: str, query: bytes, inm: str | None = None) -> bytes:
        target = path.encode() + (b"?" + query if query else b"")
        extra = f"If-None-Match: {inm}\r\n".encode() if inm else b""
        return (
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + extra
            + b"\r\n"
        )

    async def run() -> None:
        warm = await exchange(b"".join(request(p, q) for p, q in URLS))  # pipelined
        assert [status for status, _h, _b in warm] == [200] * len(URLS)
        calls.clear()
        again = await exchange(b"".join(request(p, q) for p, q in URLS))
        assert [(s, b) for s, _h, b in again] == [(s, b) for s, _h, b in warm]
        for (path, query), (_s, headers, _b) in zip(URLS, again, strict=True):
            assert headers[b"x-content-type-options"] == b"nosniff" and b"date" in headers
            ((status, h304, body),) = await exchange(
                request(path, query, headers[b"etag"].decode())
            )
            assert status == 304 and body == b"" and h304[b"etag"] == headers[b"etag"]

    asyncio.run(run())
    assert calls == Counter()


def parse(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Split a byte stream of HTTP/1.1 responses (Content-Length framed, 304 bodiless)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            headers[name.lower()] = value
        length = 0 if status == 304 else int(headers.get(b"content-length", b"0"))
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out
