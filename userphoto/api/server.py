"""The HTTP server process: a bare photo hot path in front of the Starlette site.

Request flow for a photo GET (`/v1/users/`, `/v1.0/`, `/ews/`, `/avatar/`):
  Authorization header → Viewer (a dict hit after the first request with that credential)
  → (path, query) → target user id → (path, query, viewer relation) → encoded Answer
  → `If-None-Match` ? 304 : 200. No SQL, no image work, no framework in the steady state.
A miss runs the surface's handler (store reads, the resolution rule, maybe a resize) and
caches the answer. Writes (PUT/DELETE) run in a worker thread and drop the cache at once.

`Poller` re-reads `store.generation()` every 200 ms in a daemon thread: a change committed by
any process (the CLI, sync, another node on PostgreSQL) empties this process's caches and
reloads credentials, so it shows within a fraction of a second.

Served by granian through its native RSGI interface (`__rsgi__`; the Starlette site is bridged,
see `rsgi.py`); `__call__` is the same server as plain ASGI for any other ASGI server. See
BENCHMARKS.md "Serving" for the measured choice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..app import App
from ..auth import Authenticator
from ..errors import UserPhotoError
from .cache import Answer, AnswerCache, error_answer, relation
from .common import Req, Services
from .lookup import Lookup
from .rsgi import serve_asgi
from .site import create_site

log = logging.getLogger("userphoto.api")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

POLL_SECONDS = 0.2


class Surface(Protocol):
    def handle(self, req: Req) -> Answer: ...

    def error(self, exc: UserPhotoError) -> Answer: ...


class Poller(threading.Thread):
    """Drops caches and reloads credentials whenever the store's generation moves."""

    def __init__(self, server: PhotoServer, interval: float = POLL_SECONDS):
        super().__init__(name="userphoto-generation-poller", daemon=True)
        self.server = server
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.server.refresh()
            except Exception:  # a locked or restarting database: try again next tick
                log.exception("generation poll failed")


class PhotoServer:
    def __init__(self, app: App, *, poll: bool = True):
        self.app = app
        self.auth = Authenticator(app.store, tuple(app.settings.get("server", "domains", [])))
        self.lookup = Lookup(app)
        self.services = Services(app, self.auth, self.lookup)
        self.cache = AnswerCache()
        self.cache.invalidate(app.store.generation())
        self.site: ASGIApp = create_site(self.services)
        self.max_body = app.settings.limits.max_bytes
        self._write_lock = threading.Lock()
        self.surfaces: list[tuple[str, Surface]] = self._surfaces()
        self.poller: Poller | None = None
        if poll:
            self.poller = Poller(self)
            self.poller.start()

    def _surfaces(self) -> list[tuple[str, Surface]]:
        from . import avatar, ews, graph, native

        ews_api = ews.EwsApi(self.services)
        return [
            (native.PREFIX, native.NativeApi(self.services)),
            (graph.PREFIX, graph.GraphApi(self.services)),
            (avatar.PREFIX, avatar.AvatarApi(self.services)),
            (ews.PREFIX, ews_api),
            ("/EWS/", ews_api),  # IIS paths are case-insensitive; clients send both
        ]

    def refresh(self, force: bool = False) -> None:
        generation = self.app.store.generation()
        if force or generation != self.cache.generation:
            self.auth.reload()
            self.lookup.reset()
            self.cache.invalidate(generation)

    # --- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for prefix, surface in self.surfaces:
                if path.startswith(prefix):
                    await self.photo(surface, scope, receive, send)
                    return
        await self.site(scope, receive, send)

    async def photo(self, surface: Surface, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value
        method: str = scope["method"]
        head = method == "HEAD"
        try:
            viewer = self.auth.from_header(authorization)
        except UserPhotoError as exc:
            await _send(send, surface.error(exc), None, head)
            return
        path: str = scope["path"]
        if method == "GET" or head:
            cache = self.cache
            key: tuple = (path, scope["query_string"])
            if "/me/" in path or path.endswith("/me"):
                key = (*key, viewer.user_id)  # the target depends on who asks
            if key in cache.targets:
                answer = cache.answers.get((key, relation(viewer, cache.targets[key])))
                if answer is not None:
                    await _send(send, answer, if_none_match, head)
                    return
            built_at = cache.generation
            req = Req(method, path, scope["query_string"], dict(scope["headers"]), viewer)
            answer = _guarded(surface, req)
            if answer.cacheable:
                cache.put(key, relation(viewer, answer.target), answer, built_at)
            await _send(send, answer, if_none_match, head)
            return
        headers = dict(scope["headers"])
        body, problem = await _read_body(receive, headers, self.max_body)
        if problem is not None:
            await _send(send, surface.error(problem), None, False)
            return
        req = Req(method, path, scope["query_string"], headers, viewer, body)
        answer = await asyncio.to_thread(self._write, surface, req)
        await _send(send, answer, None, False)

    def _write(self, surface: Surface, req: Req) -> Answer:
        with self._write_lock:  # one upload renders at a time: predictable CPU and memory
            answer = _guarded(surface, req)
        if answer.status < 400:
            self.refresh(force=True)
        return answer

    # --- RSGI (what `userphoto serve` runs: granian's native interface) --------------------------
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return  # no websocket routes
        path: str = scope.path
        for prefix, surface in self.surfaces:
            if path.startswith(prefix):
                await self.rsgi_photo(surface, scope, proto)
                return
        await serve_asgi(self.site, scope, proto)

    async def rsgi_photo(self, surface: Surface, scope: Any, proto: Any) -> None:
        """The hot path again, on RSGI objects (str headers, synchronous responses)."""
        headers = scope.headers
        inm: str | None = headers.get("if-none-match")
        method: str = scope.method
        head = method == "HEAD"
        try:
            viewer = self.auth.from_header(headers.get("authorization"))
        except UserPhotoError as exc:
            _respond(proto, surface.error(exc), None, head)
            return
        path: str = scope.path
        query: str = scope.query_string
        if method == "GET" or head:
            cache = self.cache
            key: tuple = (path, query)
            if "/me/" in path or path.endswith("/me"):
                key = (*key, viewer.user_id)
            if key in cache.targets:
                answer = cache.answers.get((key, relation(viewer, cache.targets[key])))
                if answer is not None:
                    _respond(proto, answer, inm, head)
                    return
            built_at = cache.generation
            req = Req(
                method, path, query.encode("latin-1", "replace"), _byte_headers(headers), viewer
            )
            answer = _guarded(surface, req)
            if answer.cacheable:
                cache.put(key, relation(viewer, answer.target), answer, built_at)
            _respond(proto, answer, inm, head)
            return
        byte_headers = _byte_headers(headers)
        body, problem = await _read_rsgi_body(proto, byte_headers, self.max_body)
        if problem is not None:
            _respond(proto, surface.error(problem), None, False)
            return
        req = Req(method, path, query.encode("latin-1", "replace"), byte_headers, viewer, body)
        answer = await asyncio.to_thread(self._write, surface, req)
        _respond(proto, answer, None, False)


def _byte_headers(headers: Any) -> dict[bytes, bytes]:
    return {
        k.lower().encode("latin-1", "replace"): v.encode("latin-1", "replace")
        for k, v in headers.items()
    }


def _respond(proto: Any, answer: Answer, if_none_match: str | None, head: bool) -> None:
    if (
        if_none_match is not None
        and answer.status == 200
        and answer.matches(if_none_match.encode("latin-1", "replace"))
    ):
        proto.response_empty(304, answer.text_headers_304())
    elif head:
        proto.response_empty(answer.status, answer.text_headers_head())
    else:
        proto.response_bytes(answer.status, answer.text_headers(), answer.body)


async def _read_rsgi_body(
    proto: Any, headers: dict[bytes, bytes], limit: int
) -> tuple[bytes, UserPhotoError | None]:
    declared = headers.get(b"content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return b"", UserPhotoError("Content-Length is not a number.", code="bad_request")
        if int(declared) > limit:
            return b"", _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in proto:
        size += len(chunk)
        if size > limit:
            return b"", _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks), None


def _too_large(limit: int) -> UserPhotoError:
    return UserPhotoError(
        f"The upload is larger than the {limit:,}-byte limit ([limits] max_bytes).",
        code="image_too_large",
        status=413,
    )


def _guarded(surface: Surface, req: Req) -> Answer:
    try:
        return surface.handle(req)
    except UserPhotoError as exc:
        return surface.error(exc)
    except Exception:
        log.exception("unexpected error serving %s %s", req.method, req.path)
        return error_answer(500, "internal", "Internal error.")


async def _read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int
) -> tuple[bytes, UserPhotoError | None]:
    too_large = _too_large(limit)
    declared = headers.get(b"content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return b"", UserPhotoError("Content-Length is not a number.", code="bad_request")
        if int(declared) > limit:
            return b"", too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", UserPhotoError("The client went away.", code="disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


async def _send(send: Send, answer: Answer, if_none_match: bytes | None, head: bool) -> None:
    if if_none_match is not None and answer.status == 200 and answer.matches(if_none_match):
        await send(
            {"type": "http.response.start", "status": 304, "headers": answer.not_modified or []}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


def create_app() -> PhotoServer:
    """The ASGI application for granian's factory mode (reads USERPHOTO_HOME)."""
    return PhotoServer(App.load(os.environ.get("USERPHOTO_HOME") or None))


def run(host: str, port: int, *, workers: int = 1, log_level: str = "warning") -> None:
    """Serve until interrupted. One worker by default: each worker keeps its own cache."""
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "userphoto.api.server:create_app",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        factory=True,
        workers=workers,
        log_level=log_level,  # type: ignore[arg-type]
        log_access=False,  # access logs would record Authorization-bearing requests' timing
    ).serve()
