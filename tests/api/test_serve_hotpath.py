"""The hot path's promise: once warm, no store access and no image work per request."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image

from userphoto import auth, imaging
from userphoto.api import default_picture
from userphoto.api.server import PhotoServer
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import Picture, User, Visibility
from userphoto.store import Change, ChangeKind
from userphoto.store.base import Store

T = TypeVar("T")


def in_loop(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own: a Playwright test earlier in the same process
    leaves an event loop running on the main thread, where `asyncio.run` would refuse."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result()


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
    headers = [(b"host", b"x")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
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

    in_loop(run())
    assert calls == Counter()


def test_a_change_drops_the_cache_and_bodies_are_shared(hot) -> None:
    server, token, calls, app = hot

    async def run() -> tuple[dict, dict, dict]:
        a = await call(server, "/v1/users/ada@hot.test/photo", b"size=96", token)
        b = await call(server, "/v1/users/u-ada/photo", b"size=HR96x96", token)
        app.photos.set("ada@hot.test", portrait(2, 700, 700))
        server.follower.catch_up()  # what the change follower does within ~50 ms
        calls.clear()
        c = await call(server, "/v1/users/ada@hot.test/photo", b"size=96", token)
        return a, b, c

    a, b, c = in_loop(run())
    assert a["body"] is b["body"]  # one object for identical bytes, whatever the URL
    assert c["headers"][b"etag"] != a["headers"][b"etag"]
    assert calls["serving"] == 1 and calls["get_rendition"] == 0  # one read, bytes included


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

    in_loop(run())
    assert 0 < len(server.cache.answers) < 50


def test_a_write_to_one_user_leaves_every_other_users_answers_cached(hot) -> None:
    """Per-user invalidation: after a change to Bo, everything not about Bo is still
    answered with zero store calls; Bo's answers (and lookups by Bo's keys) are rebuilt."""
    server, token, calls, app = hot
    bo_md5 = hashlib.md5(b"bo@hot.test").hexdigest()
    bo_urls = [
        ("/v1/users/bo@hot.test/photo", b"size=96"),
        ("/avatar/" + bo_md5, b"s=40&d=identicon"),
    ]
    # An address that does not exist yet: its cached "not found" must go when Bo gets it.
    alias_url = ("/v1/users/bo.alias@hot.test/photo", b"")

    async def warm() -> list[dict]:
        out = [await call(server, path, query, token) for path, query in URLS]
        out += [await call(server, path, query, token) for path, query in [*bo_urls, alias_url]]
        return out

    before = in_loop(warm())
    assert before[-1]["status"] == 404
    user = app.store.find_user("bo@hot.test")
    assert user is not None
    user.aliases = ["bo.alias@hot.test"]
    app.store.update_user(user)
    app.photos.set("bo@hot.test", portrait(3, 500, 500))
    server.follower.catch_up()
    calls.clear()

    async def others() -> list[dict]:
        return [await call(server, path, query, token) for path, query in URLS]

    again = in_loop(others())
    assert calls == Counter(), "a change to Bo must leave other users' answers cached"
    assert [a["headers"][b"etag"] for a in again] == [
        b["headers"][b"etag"] for b in before[: len(URLS)]
    ]

    async def bo() -> list[dict]:
        return [await call(server, path, query, token) for path, query in [*bo_urls, alias_url]]

    rebuilt = in_loop(bo())
    assert calls["serving"] >= 3  # rebuilt, not served stale
    assert rebuilt[0]["headers"][b"x-photo-source"] == b"hd"
    assert rebuilt[2]["status"] == 200  # the new alias finds Bo now
    assert server.cache.invalidations >= 3


def test_cache_eviction_is_lru_never_a_wipe(hot) -> None:
    """At its byte bound the cache drops the least recently used answers, not everything:
    an answer hit all along survives a flood of one-off URLs."""
    server, token, _calls, _app = hot
    server.cache.max_bytes = 60_000
    hot_url = ("/v1/users/ada@hot.test/photo", b"size=48")

    async def run() -> None:
        await call(server, *hot_url, token)
        for n in range(300):
            await call(server, "/avatar/" + f"{n:032x}", b"d=identicon&s=20", token)
            await call(server, *hot_url, token)
            assert server.cache.bytes <= 60_000

    in_loop(run())
    key = server.route_key(hot_url[0], hot_url[1].decode())
    assert any(entry[0] == key for entry in server.cache.answers)
    assert server.cache.evictions > 0


def test_junk_parameters_and_padded_tokens_share_cache_entries(hot) -> None:
    """The cache key is built from parsed, known parameters; credentials are remembered by
    their normalized value: junk and padding add nothing to memory."""
    server, token, _calls, _app = hot

    async def run() -> None:
        await call(server, "/v1/users/ada@hot.test/photo", b"size=96", token)
        entries, size = len(server.cache.answers), server.cache.bytes
        seen = len(server.auth._seen)
        for n in range(200):
            junk = f"size=96&junk{n}={'x' * 2000}".encode()
            answer = await call(server, "/v1/users/ada@hot.test/photo", junk, " " * n + token)
            assert answer["status"] == 200
        assert (len(server.cache.answers), server.cache.bytes) == (entries, size)
        assert len(server.auth._seen) == seen

    in_loop(run())


def test_a_burst_for_one_uncached_answer_builds_it_once(hot) -> None:
    """Thirty concurrent requests for one cold answer: one build in the miss pool, thirty
    identical answers, and the event loop never ran the store itself."""
    server, token, calls, _app = hot
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    original = server.app.store.serving

    def spy(*a, **kw):
        threads.add(threading.get_ident())
        return original(*a, **kw)

    server.app.store.serving = spy  # type: ignore[method-assign]

    async def run() -> list[dict]:
        return await asyncio.gather(
            *(call(server, "/v1/users/ada@hot.test/photo", b"size=120", token) for _ in range(30))
        )

    answers = in_loop(run())
    assert {a["status"] for a in answers} == {200}
    assert len({a["headers"][b"etag"] for a in answers}) == 1
    assert calls["serving"] == 1
    assert threads and loop_thread not in threads  # built off the event loop


def test_outsiders_generated_pictures_are_bounded_in_size(hot) -> None:
    """An anonymous s=2048 identicon is drawn at 512 px (the client scales it): what one
    outside request can cost is bounded. Members still get the size they asked for."""
    server, token, _calls, _app = hot

    async def run() -> tuple[dict, dict]:
        anon = await call(server, "/avatar/" + "f" * 32, b"d=identicon&s=2048", "")
        member = await call(server, "/avatar/" + "f" * 32, b"d=identicon&s=700", token)
        return anon, member

    anon, member = in_loop(run())
    assert Image.open(io.BytesIO(anon["body"])).size == (512, 512)
    assert Image.open(io.BytesIO(member["body"])).size == (700, 700)


def test_unknown_and_hidden_users_cost_the_same_store_reads(hot) -> None:
    """An outsider's miss for an unknown address and for an existing hidden user: the same
    answer, and the same store reads (so the work, and its timing, tell nothing)."""
    server, _token, calls, _app = hot
    counts = []
    answers = []
    for path in ("/v1/users/bo@hot.test/photo", "/v1/users/nobody@hot.test/photo"):
        calls.clear()
        answers.append(in_loop(call(server, path, b"size=96", "")))
        counts.append(Counter(calls))
    assert answers[0]["status"] == answers[1]["status"] == 404
    assert answers[0]["body"] == answers[1]["body"]
    assert counts[0] == counts[1] and counts[0] == Counter({"serving": 1})


def test_an_org_change_drops_everything_and_the_server_goes_on(hot) -> None:
    """A follower that fell behind the pruned change rows is told ORG: every cached answer
    and remembered credential goes, and the next requests rebuild them."""
    server, token, calls, app = hot

    async def warm() -> None:
        for path, query in URLS:
            assert (await call(server, path, query, token))["status"] == 200

    in_loop(warm())
    assert server.cache.answers
    server.apply(Change(app.store.latest_seq() + 1, ChangeKind.ORG, None))
    assert not server.cache.answers and server.cache.bytes == 0
    calls.clear()
    in_loop(warm())
    assert calls["serving"] >= 1 and server.cache.answers
