"""The HTTP/1.1 server of `userphoto serve`: uvloop + httptools, with the photo hot path inline.

A cached photo GET is answered inside `data_received`: parse, look the answer up, write one
pre-encoded byte string. Everything else (photo uploads and deletes, web pages, the admin API)
is handed to the ASGI app (`PhotoServer.__call__`) through a small bridge. Measured on this
machine, a do-nothing answer costs about a third of the server CPU it costs behind granian
(BENCHMARKS.md, "Serving"), which is what brings a cached photo near nginx.

What it speaks: HTTP/1.1 and 1.0, keep-alive, pipelined requests (answered in order),
`Expect: 100-continue`, request bodies up to the upload limit (413 beyond it, then the
connection closes), a Date on every answer. What it leaves to a proxy in front: TLS, HTTP/2,
websockets (there are none). Idle connections close after `IDLE_SECONDS`; request heads over
`MAX_HEAD` bytes get 431.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from .cache import Answer
from .server import PhotoServer

log = logging.getLogger("userphoto.api")

IDLE_SECONDS = 65.0
MAX_HEAD = 64 * 1024
_SKIP = {b"content-length", b"transfer-encoding", b"connection", b"date"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Status"
    return f"HTTP/1.1 {code} {phrase}\r\n".encode()


_STATUS = {code: _status_line(code) for code in (200, 302, 304, 400, 401, 403, 404, 500)}
_date = (0, b"")


def _date_line() -> bytes:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n")
    return _date[1]


def _head(status: int, headers: Any, length: int | None) -> bytes:
    """Status line and headers (no Date, no blank line); Content-Length when `length` is set."""
    parts = [_STATUS.get(status) or _status_line(status)]
    parts += [k + b": " + v + b"\r\n" for k, v in headers if k.lower() not in _SKIP]
    if length is not None:
        parts.append(b"content-length: %d\r\n" % length)
    return b"".join(parts)


def encoded(answer: Answer, kind: str) -> bytes:
    """The answer's wire head for `kind` (get, head, 304), made once and kept on the answer."""
    wire = answer.wire
    if wire is None:
        wire = answer.wire = {}
    head = wire.get(kind)
    if head is None:
        if kind == "304":
            head = _head(304, answer.not_modified or [], None)
        else:
            head = _head(answer.status, answer.headers, len(answer.body))
        wire[kind] = head
    return head


class Connection(asyncio.Protocol):
    """One client connection: parses requests, answers photo GETs inline, queues the rest."""

    def __init__(self, server: PhotoServer, max_body: int):
        self.server = server
        self.max_body = max_body
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[tuple] = deque()  # requests waiting behind an async one
        self.busy = False
        self.closing = False
        self.timer: asyncio.TimerHandle | None = None
        self._new_message()

    # --- connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.active = self.loop.time()
        self.timer = self.loop.call_later(IDLE_SECONDS, self._idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.timer:
            self.timer.cancel()

    def _idle(self) -> None:
        # One timer per connection, moved only when it fires: re-arming it on every request
        # would cost more than the rest of a cached answer.
        quiet = self.loop.time() - self.active
        if quiet < IDLE_SECONDS or self.busy:
            delay = IDLE_SECONDS - quiet if quiet < IDLE_SECONDS else IDLE_SECONDS
            self.timer = self.loop.call_later(delay, self._idle)
        elif self.transport:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.active = self.loop.time()
        if not self.headers_done:
            # Only what precedes the blank line is head: a body sent in the same packet
            # (any upload over MAX_HEAD) must not count as header bytes.
            end = data.find(b"\r\n\r\n")
            self.head_size += len(data) if end < 0 else end
            if self.head_size > MAX_HEAD:
                self._fail(431, b"Request header fields too large.\n")
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"Protocol upgrades are not supported.\n")
        except httptools.HttpParserError:
            self._fail(400, b"Malformed HTTP request.\n")

    def _fail(self, status: int, text: bytes) -> None:
        if self.transport and not self.closing:
            head = _head(status, [(b"content-type", b"text/plain; charset=utf-8")], len(text))
            self.transport.write(head + _date_line() + b"connection: close\r\n\r\n" + text)
            self.transport.close()
        self.closing = True

    # --- httptools callbacks ------------------------------------------------------------------
    def _new_message(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.headers_done = False
        self.head_size = 0
        self.discard = False

    def on_message_begin(self) -> None:
        self._new_message()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        for name, value in self.headers:
            if name == b"content-length" and value.strip().isdigit():
                if int(value) > self.max_body:
                    # Answer now (the surface's own 413) and drop the body: no point reading
                    # megabytes we will refuse; the connection closes after the answer.
                    self.discard = True
                    self._submit(keep_alive=False)
                    return
            elif name == b"expect" and value.lower() == b"100-continue" and self.transport:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.discard:
            return
        self.body_size += len(body)
        if self.body_size <= self.max_body:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.discard:
            return
        self._submit(keep_alive=self.parser.should_keep_alive())

    # --- dispatch -----------------------------------------------------------------------------
    def _submit(self, keep_alive: bool) -> None:
        headers = self.headers
        if self.body_size > self.max_body:  # a chunked body past the limit: say its size
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            headers.append((b"content-length", str(self.body_size).encode()))
            keep_alive = False
        request = (
            self.parser.get_method(),
            self.url,
            headers,
            b"".join(self.body),
            keep_alive,
            self.parser.get_http_version(),
        )
        if self.busy:
            self.pending.append(request)
        else:
            self._handle(request)

    def _handle(self, request: tuple) -> None:
        method, url, headers, body, keep_alive, version = request
        raw_path, _, query = url.partition(b"?")
        path = (
            unquote(raw_path.decode("utf-8", "replace"))
            if b"%" in raw_path
            else (raw_path.decode("utf-8", "replace"))
        )
        if method in (b"GET", b"HEAD"):
            for prefix, surface in self.server.surfaces:
                if path.startswith(prefix):
                    self._photo(surface, method, path, query, headers, keep_alive, version)
                    return
        self.busy = True
        self.transport.pause_reading()  # type: ignore[union-attr]
        task = self.loop.create_task(
            self._asgi(method, path, raw_path, query, headers, body, keep_alive, version)
        )
        task.add_done_callback(self._done)

    def _photo(
        self,
        surface: Any,
        method: bytes,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        version: str,
    ) -> None:
        """The hot path: one cached answer written as one byte string."""
        fields = dict(headers)
        head = method == b"HEAD"
        answer = self.server.photo_answer(surface, "HEAD" if head else "GET", path, query, fields)
        inm = fields.get(b"if-none-match")
        if inm is not None and answer.status == 200 and answer.matches(inm):
            wire = encoded(answer, "304")
            body = b""
        else:
            wire = encoded(answer, "head" if head else "get")
            body = b"" if head else answer.body
        self._write(wire, body, keep_alive, version)

    def _write(self, head: bytes, body: bytes, keep_alive: bool, version: str) -> None:
        if self.closing or self.transport is None:
            return
        if keep_alive:
            connection = b"connection: keep-alive\r\n" if version == "1.0" else b""
        else:
            connection = b"connection: close\r\n"
        self.transport.write(b"".join((head, _date_line(), connection, b"\r\n", body)))
        if not keep_alive:
            self.transport.close()
            self.closing = True

    # --- the ASGI bridge ----------------------------------------------------------------------
    async def _asgi(
        self,
        method: bytes,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        version: str,
    ) -> None:
        transport = self.transport
        assert transport is not None
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version,
            "method": method.decode("latin-1"),
            "scheme": "http",
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": transport.get_extra_info("peername"),
            "server": transport.get_extra_info("sockname"),
            "extensions": {},
        }
        delivered = False
        done = asyncio.Event()
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body" and not done.is_set():
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.server(scope, receive, send)
        except Exception:
            log.exception("unexpected error serving %s %s", scope["method"], path)
        if not start or not done.is_set():
            start, chunks = (
                {"status": 500, "headers": [(b"content-type", b"text/plain")]},
                [b"Internal error.\n"],
            )
            done.set()
        payload = b"" if method == b"HEAD" else b"".join(chunks)
        length = sum(len(c) for c in chunks)
        head = _head(start["status"], start.get("headers", []), length)
        self._write(head, payload, keep_alive, version)

    def _done(self, _task: asyncio.Task) -> None:
        self.busy = False
        while self.pending and not self.busy and not self.closing:
            self._handle(self.pending.popleft())
        if not self.busy and not self.closing and self.transport:
            self.transport.resume_reading()


# --- running -------------------------------------------------------------------------------------
def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _serve(sock: socket.socket, server: PhotoServer) -> None:
    loop = asyncio.get_running_loop()
    max_body = server.max_body + 64 * 1024  # multipart framing around the photo
    listener = await loop.create_server(lambda: Connection(server, max_body), sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    if server.poller:
        server.poller.stopped.set()


def run(host: str, port: int, *, workers: int = 1) -> None:
    """Serve until SIGTERM or Ctrl-C. Workers share the socket; each keeps its own cache."""
    import uvloop

    from ..app import App

    sock = listen(host, port)
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    server = PhotoServer(App.load(os.environ.get("USERPHOTO_HOME") or None))
    try:
        uvloop.run(_serve(sock, server))
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except ProcessLookupError:
                pass
