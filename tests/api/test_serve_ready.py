"""/readyz means "caches warm", and first-seen credential checks of the site stay off the
event loop. Both over real HTTP: the `PhotoServer` of this process on a loopback socket (its
ASGI entry point on uvicorn), so the test can slow down or break its store on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.support.net import free_port
from userphoto import auth
from userphoto.api import site
from userphoto.api.server import PhotoServer
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import Picture, User, Visibility
from userphoto.store import WebSession
from userphoto.web.session import COOKIE, Session, SessionKeys, fresh

PHOTO = "/v1/users/ada@ready.test/photo?size=96"


def signed_in(app: App, token: str, address: str) -> tuple[Session, str]:
    """A token session as sign-in records it (in the store), and its cookie, sealed with
    the store's session keys as the server does."""
    now = time.time()
    record = WebSession(f"sid-{now}", address, None, None, now, now, now + 3600)
    app.store.start_session(record)
    session = fresh("token", token, record.id)
    lifetime = app.settings.web.session_lifetime
    keys = SessionKeys(app.store, lifetime, app.settings.home)
    return session, keys.seal(json.dumps(asdict(session)).encode())


class Live:
    """A PhotoServer on a real socket, run by uvicorn in a thread of this process."""

    def __init__(self, server: PhotoServer):
        self.server = server
        port = free_port()
        config = uvicorn.Config(
            server, host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop="asyncio"
        )
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.uvicorn.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base + path, headers=headers, timeout=10, **kw)

    def close(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(10)
        self.server.close()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[App, dict[str, str]]]:
    app = App(Settings.load(tmp_path))
    app.settings.write_default()
    app.store.add_user(
        User(
            id="u-ada", address="ada@ready.test", display_name="Ada", visibility=Visibility.EVERYONE
        )
    )
    app.store.add_user(User(id="u-bo", address="bo@ready.test", display_name="Bo"))
    app.photos.set("ada@ready.test", portrait(3, 400, 400))
    tokens = {
        "ada": auth.create_token(app.store, "ada@ready.test")[1],
        "bo": auth.create_token(app.store, "bo@ready.test")[1],
    }
    yield app, tokens
    app.close()


def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_readyz_waits_for_the_change_feed_and_notices_when_it_stops(
    home: tuple[App, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _tokens = home
    feed_ok = threading.Event()
    original = app.store.wait_for_changes

    def feed(seq: int, timeout: float) -> list:
        if not feed_ok.is_set():
            time.sleep(0.05)
            raise OSError("the change feed is unreadable (test)")
        return original(seq, min(timeout, 0.1))

    monkeypatch.setattr(app.store, "wait_for_changes", feed)
    monkeypatch.setattr(site, "READY_STALE", 0.5)
    server = PhotoServer(app, poll=False)
    live = Live(server)
    try:
        not_following = live.get("/readyz")
        assert not_following.status_code == 503
        assert not_following.json()["status"] == "change feed not followed"
        assert not_following.headers["cache-control"] == "no-store"

        server.follower.start()  # its reads fail: alive, but never caught up
        time.sleep(0.2)
        warming = live.get("/readyz")
        assert warming.status_code == 503 and warming.json()["status"].startswith("warming up")

        feed_ok.set()
        wait_until(lambda: live.get("/readyz").status_code == 200, timeout=30)  # workers start
        ready = live.get("/readyz").json()
        assert ready["status"] == "ready" and ready["applied_seq"] == ready["change_seq"]
        assert not server.workers_starting.is_alive()  # ready only once the workers are up

        feed_ok.clear()  # the feed breaks: after READY_STALE the process is not ready
        wait_until(lambda: live.get("/readyz").status_code == 503)
        assert live.get("/readyz").json()["status"].startswith("change feed not read for")
        assert live.get("/healthz").status_code == 200  # alive all along
    finally:
        feed_ok.set()
        live.close()


class SlowFirstCheck:
    """Wraps `store.find_user`: the first call for `address` blocks until released."""

    def __init__(self, original: Any, address: str):
        self.original = original
        self.address = address
        self.entered = threading.Event()
        self.release = threading.Event()
        self.blocked = 0

    def __call__(self, key: str) -> Any:
        if key == self.address and not self.entered.is_set():
            self.blocked += 1
            self.entered.set()
            self.release.wait(20)
        return self.original(key)


@pytest.mark.parametrize("how", ["header", "session cookie"])
def test_a_slow_first_token_check_does_not_block_cached_gets(
    home: tuple[App, dict[str, str]], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    app, tokens = home
    server = PhotoServer(app)
    live = Live(server)
    try:
        warm = live.get(PHOTO, tokens["ada"])
        assert warm.status_code == 200  # ada's token and the answer are now in memory
        slow = SlowFirstCheck(app.store.find_user, "bo@ready.test")
        monkeypatch.setattr(app.store, "find_user", slow)
        results: dict[str, httpx.Response] = {}

        def first_visit() -> None:
            if how == "header":  # the site's API: a token never seen before
                results["first"] = live.get("/v1/whoami", tokens["bo"])
            else:  # a web page signed in with that token (the session cookie names it)
                _session, cookie = signed_in(app, tokens["bo"], "bo@ready.test")
                results["first"] = live.get("/", cookies={COOKIE: cookie})

        visitor = threading.Thread(target=first_visit)
        visitor.start()
        assert slow.entered.wait(10), "the first check never read the store"
        # The check is stuck in the store; the event loop must still answer from memory.
        cached = [live.get(PHOTO, tokens["ada"]) for _ in range(5)]
        assert [r.status_code for r in cached] == [200] * 5
        assert all(r.content == warm.content for r in cached)
        assert not slow.release.is_set() and "first" not in results  # still stuck meanwhile
        slow.release.set()
        visitor.join(10)
        first = results["first"]
        if how == "header":
            assert first.status_code == 200 and first.json()["kind"] == "member"
            assert first.json()["address"] == "bo@ready.test"
        else:  # signed in: the start page sends a member to their own page
            assert first.status_code in (302, 303) and first.headers["location"].endswith("/me")
        assert slow.blocked == 1
    finally:
        live.close()


def test_request_records_are_never_lost_between_batches(
    home: tuple[App, dict[str, str]],
) -> None:
    """The serving thread appends records while another thread flushes them (the change
    follower does, every second): every request is counted exactly once."""
    app, _tokens = home
    server = PhotoServer(app, poll=False)
    try:
        total = 30_000
        done = threading.Event()

        def serve() -> None:
            began = time.perf_counter()
            for n in range(total):
                status = 200 if n % 3 else 304
                what = ("GET", "/test/{n}", None, status, 0, "hit", "member", None)
                server.requests.record(began, what, f"r{n}", "127.0.0.1")
            done.set()

        serving = threading.Thread(target=serve)
        serving.start()
        flushes = 0
        while not done.is_set():
            server.requests.flush()
            flushes += 1
        serving.join()
        text = server.metrics.render()  # renders after a last flush of what is pending
        counted = {
            status: server.metrics.requests.get(("/test/{n}", status), 0) for status in (200, 304)
        }
        assert counted == {200: total * 2 // 3, 304: total // 3}
        assert flushes > 1
        assert 'userphoto_request_seconds_count{route="/test/{n}"} 30000.0' in text
    finally:
        server.close()


class LoopGuard:
    """The store, with every call made on the server's event-loop thread recorded."""

    def __init__(self, store: Any):
        self._store = store
        self.loop_thread: threading.Thread | None = None
        self.on_loop: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is self.loop_thread:
                self.on_loop.append(name)
            return attr(*args, **kwargs)

        return call


def test_web_pages_never_read_the_store_on_the_event_loop(
    home: tuple[App, dict[str, str]],
) -> None:
    """Every web page and form a member or an admin uses, over real HTTP, with a store that
    notes each call made on the event loop's thread: there must be none."""
    seeded, tokens = home
    admin = auth.create_token(seeded.store, "root@ready.test", admin=True)[1]
    bo = seeded.store.find_user("bo@ready.test")
    assert bo is not None  # a web-address picture: listings draw initials for it
    seeded.store.update_user(
        replace(bo, picture=Picture.URL, picture_url="https://pictures.example/bo.jpg")
    )
    app = App(Settings.load(seeded.settings.home))
    guard = LoopGuard(app.store)
    app.store = guard  # type: ignore[misc]  # before anything built on the store
    server = PhotoServer(app, poll=False)
    live = Live(server)
    guard.loop_thread = live.thread  # uvicorn runs its event loop there
    try:
        for token, pages in (
            (tokens["ada"], ["/", "/me", "/web/users/u-ada/photo?size=96"]),
            (
                admin,
                [
                    "/admin",
                    "/admin/users/u-bo",
                    "/admin/troubleshoot?target=ada@ready.test",
                    "/admin/doctor?fragment=1",
                    "/web/users/u-bo/photo?size=48&url=0",
                ],
            ),
        ):
            session, cookie = signed_in(app, token, "someone@ready.test")
            jar = {COOKIE: cookie}
            for page in pages:
                answer = live.get(page, cookies=jar)
                assert answer.status_code in (200, 302, 303), (page, answer.status_code)
            csrf = {"x-csrf-token": session.csrf}
            own = "u-ada" if token == tokens["ada"] else "u-bo"
            preview = httpx.post(
                f"{live.base}/web/users/{own}/preview",
                content=portrait(5, 300, 300),
                headers=csrf,
                cookies=jar,
                timeout=30,
            )
            assert preview.status_code == 200, preview.text
            for action in ("save", "remove", "clear-record"):
                done = httpx.post(
                    f"{live.base}/web/users/{own}/{action}",
                    data={"csrf": session.csrf, "back": "/me"},
                    cookies=jar,
                    timeout=30,
                )
                assert done.status_code in (302, 303), (action, done.status_code)
            changed = httpx.post(
                f"{live.base}/web/users/{own}/settings",
                data={"csrf": session.csrf, "back": "/me", "visibility": "everyone"},
                cookies=jar,
                timeout=30,
            )
            assert changed.status_code in (302, 303)
        # The HTTP API too: reads, a miss, the admin API and an upload.
        for path in (
            PHOTO,
            "/v1/users/bo@ready.test/photo?size=64",
            "/v1/whoami",
            "/v1/admin/diagnose?target=ada@ready.test",
            "/v1/admin/doctor",
        ):
            assert live.get(path, admin).status_code in (200, 302, 404), path
        upload = httpx.put(
            f"{live.base}/v1.0/users/ada@ready.test/photo/$value",
            content=portrait(6, 300, 300),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "image/jpeg"},
            timeout=30,
        )
        assert upload.status_code in (200, 204), upload.text
        assert guard.on_loop == []
    finally:
        live.close()
        app.close()
