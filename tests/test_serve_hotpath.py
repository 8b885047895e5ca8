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


class RsgiScope:
    """The attributes granian's RSGI scope carries (headers: a str mapping)."""

    proto = "http"
    http_version = "1.1"
    scheme = "http"
    client = "127.0.0.1:5555"
    server = "127.0.0.1:8080"

    def __init__(self, path: str, query: str, headers: dict[str, str]):
        self.method = "GET"
        self.path = path
        self.query_string = query
        self.headers = headers


class RsgiProto:
    def __init__(self) -> None:
        self.sent: list[tuple[int, list, bytes]] = []

    def response_bytes(self, status: int, headers: list, body: bytes) -> None:
        self.sent.append((status, headers, body))

    def response_empty(self, status: int, headers: list) -> None:
        self.sent.append((status, headers, b""))


def test_rsgi_hot_path_is_as_lean(hot) -> None:
    server, token, calls, _app = hot

    async def one(path: str, query: bytes, inm: str | None = None) -> tuple[int, list, bytes]:
        headers = {"authorization": f"Bearer {token}"}
        if inm:
            headers["if-none-match"] = inm
        proto = RsgiProto()
        await server.__rsgi__(RsgiScope(path, query.decode(), headers), proto)
        return proto.sent[0]

    async def run() -> None:
        for path, query in URLS:
            assert (await one(path, query))[0] == 200
        calls.clear()
        for path, query in URLS:
            status, headers, body = await one(path, query)
            assert status == 200 and body
            etag = dict(headers)["etag"]
            assert (await one(path, query, etag))[0] == 304

    asyncio.run(run())
    assert calls == Counter()
