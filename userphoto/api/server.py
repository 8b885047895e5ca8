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

`PhotoServer` is an ASGI app; `userphoto serve` runs it on the small HTTP/1.1 server in
`http.py`, which answers photo GETs from `photo_answer` without going through ASGI at all
(BENCHMARKS.md "Serving" has the measurements behind that).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..app import App
from ..auth import Authenticator
from ..errors import UserPhotoError
from .cache import Answer, AnswerCache, error_answer, relation
from .common import Req, Services
from .lookup import Lookup
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
        domains = tuple(app.settings.get("server", "domains", []))
        self.auth = Authenticator(app.store, domains, oidc=app.oidc)
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

    def photo_answer(
        self, surface: Surface, method: str, path: str, query: bytes, headers: dict[bytes, bytes]
    ) -> Answer:
        """The answer to a photo GET/HEAD: from the cache, or built once and cached."""
        try:
            viewer = self.auth.from_header(headers.get(b"authorization"))
        except UserPhotoError as exc:
            return surface.error(exc)
        cache = self.cache
        key: tuple = (path, query)
        if "/me/" in path or path.endswith("/me"):
            key = (*key, viewer.user_id)  # the target depends on who asks
        if key in cache.targets:
            answer = cache.answers.get((key, relation(viewer, cache.targets[key])))
            if answer is not None:
                return answer
        built_at = cache.generation
        answer = guarded(surface, Req(method, path, query, headers, viewer))
        if answer.cacheable:
            cache.put(key, relation(viewer, answer.target), answer, built_at)
        return answer

    async def photo(self, surface: Surface, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        method: str = scope["method"]
        path: str = scope["path"]
        if method in ("GET", "HEAD"):
            answer = self.photo_answer(surface, method, path, scope["query_string"], headers)
            await _send(send, answer, headers.get(b"if-none-match"), method == "HEAD")
            return
        try:
            viewer = self.auth.from_header(headers.get(b"authorization"))
        except UserPhotoError as exc:
            await _send(send, surface.error(exc), None, False)
            return
        body, problem = await _read_body(receive, headers, self.max_body)
        if problem is not None:
            await _send(send, surface.error(problem), None, False)
            return
        req = Req(method, path, scope["query_string"], headers, viewer, body)
        answer = await asyncio.to_thread(self._write, surface, req)
        await _send(send, answer, None, False)

    def _write(self, surface: Surface, req: Req) -> Answer:
        with self._write_lock:  # one upload renders at a time: predictable CPU and memory
            answer = guarded(surface, req)
        if answer.status < 400:
            self.refresh(force=True)
        return answer


def _too_large(limit: int) -> UserPhotoError:
    return UserPhotoError(
        f"The upload is larger than the {limit:,}-byte limit ([limits] max_bytes).",
        code="image_too_large",
        status=413,
    )


def guarded(surface: Surface, req: Req) -> Answer:
    """The surface's answer; its own error shape for a UserPhotoError, a bare 500 for a bug."""
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
