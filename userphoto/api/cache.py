"""Encoded answers (status + headers + bytes) and the in-memory cache that holds them.

An `Answer` is built once, with every header final (strong ETag over the exact bytes,
Cache-Control, Vary, nosniff), so serving a cached one is two ASGI messages and nothing else.
The cache is dropped whenever the store's generation changes (see `server.Poller`); an answer
computed from data older than the current generation is never stored, so a build that raced
an invalidation cannot leave a stale entry behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import StoreUnavailable
from ..model import Viewer

Headers = list[tuple[bytes, bytes]]

NOSNIFF = (b"x-content-type-options", b"nosniff")
VARY_AUTH = (b"vary", b"Authorization")
PUBLIC_MAX_AGE = 300  # public answers: Libravatar's own value; ETags make revalidation cheap
PRIVATE_MAX_AGE = 60


def etag_of(body: bytes) -> bytes:
    """A strong ETag: it changes exactly when the bytes change."""
    return b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


def cache_control(viewer: Viewer) -> bytes:
    if viewer.address is None:
        return f"public, max-age={PUBLIC_MAX_AGE}".encode()
    return f"private, max-age={PRIVATE_MAX_AGE}".encode()


@dataclass(slots=True)
class Answer:
    status: int
    headers: Headers
    body: bytes = b""
    etag: bytes | None = None
    not_modified: Headers | None = None  # the 304's headers (ETag, caching, Vary)
    target: str | None = None  # id of the user it is about (for the viewer relation)
    cacheable: bool = False
    # The encoded heads (status line + headers) for the HTTP server, made on first use.
    wire: dict[str, bytes] | None = None

    def matches(self, if_none_match: bytes) -> bool:
        """`If-None-Match` handling: `*`, a list, and weak comparison (RFC 9110 §13.1.2)."""
        etag = self.etag
        if etag is None:
            return False
        if if_none_match == etag:
            return True
        for candidate in if_none_match.split(b","):
            candidate = candidate.strip()
            if candidate.startswith(b"W/"):
                candidate = candidate[2:]
            if candidate == etag or candidate == b"*":
                return True
        return False


def _common(viewer: Viewer, vary: bool) -> Headers:
    headers = [(b"cache-control", cache_control(viewer)), NOSNIFF]
    if vary:
        headers.append(VARY_AUTH)
    return headers


def body_answer(
    status: int,
    body: bytes,
    content_type: bytes,
    viewer: Viewer,
    *,
    extra: Iterable[tuple[bytes, bytes]] = (),
    target: str | None = None,
    cacheable: bool = True,
) -> Answer:
    """A 200-style answer with an ETag and caching headers."""
    etag = etag_of(body)
    common = _common(viewer, vary=True)
    extra = list(extra)
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"etag", etag),
        *common,
        *extra,
    ]
    return Answer(
        status,
        headers,
        body,
        etag,
        not_modified=[(b"etag", etag), *common, *extra],
        target=target,
        cacheable=cacheable,
    )


def image_answer(
    body: bytes,
    viewer: Viewer,
    source: str,
    *,
    target: str | None,
    content_type: bytes = b"image/jpeg",
) -> Answer:
    return body_answer(
        200,
        body,
        content_type,
        viewer,
        extra=[(b"x-photo-source", source.encode())],
        target=target,
    )


def json_answer(
    payload: Any,
    viewer: Viewer,
    *,
    status: int = 200,
    target: str | None = None,
    cacheable: bool = True,
) -> Answer:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body_answer(
        status, body, b"application/json", viewer, target=target, cacheable=cacheable
    )


def error_answer(
    status: int,
    code: str,
    message: str,
    *,
    target: str | None = None,
    cacheable: bool = False,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> Answer:
    """The JSON error shape shared by the native and Graph APIs: {"error": {code, message}}."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return plain_error(
        status, body, b"application/json", target=target, cacheable=cacheable, extra=extra
    )


def plain_error(
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    *,
    target: str | None = None,
    cacheable: bool = False,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> Answer:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache"),
        NOSNIFF,
        VARY_AUTH,
        *extra,
    ]
    if status == 503:  # the store is unreachable for now (StoreUnavailable): say when to retry
        headers.append((b"retry-after", str(StoreUnavailable.retry_after).encode()))
    return Answer(status, headers, body, target=target, cacheable=cacheable)


def redirect_answer(url: str, viewer: Viewer, *, target: str | None, source: str = "url") -> Answer:
    """A 302 to a web-address picture: we never fetch it ourselves."""
    headers = [
        (b"location", url.encode("utf-8")),
        (b"content-length", b"0"),
        (b"x-photo-source", source.encode()),
        *_common(viewer, vary=True),
    ]
    return Answer(302, headers, b"", target=target, cacheable=True)


def empty_answer(status: int, extra: Iterable[tuple[bytes, bytes]] = ()) -> Answer:
    return Answer(status, [(b"content-length", b"0"), NOSNIFF, *extra])


class AnswerCache:
    """Answers by (route key, viewer relation) plus route key → target user id.

    Plain dicts, replaced (not mutated) on invalidation so readers never see a half-cleared
    state. Identical bodies are stored once (by ETag), whatever URL or viewer produced them,
    and both the number of entries and the bytes held are bounded, so a flood of distinct
    URLs cannot grow memory without limit: past a bound the cache simply starts over.
    """

    def __init__(self, limit: int = 200_000, max_bytes: int = 256 * 1024 * 1024):
        self.limit = limit
        self.max_bytes = max_bytes
        self.generation = -1
        self.answers: dict[tuple, Answer] = {}
        self.targets: dict[tuple, str | None] = {}
        self.bodies: dict[bytes, bytes] = {}
        self.bytes = 0

    def invalidate(self, generation: int) -> None:
        # The generation moves first: a `put` racing this (from another thread) either sees
        # the new number and drops its answer, or writes into the dicts being discarded.
        self.generation = generation
        self.answers = {}
        self.targets = {}
        self.bodies = {}
        self.bytes = 0

    def put(self, key: tuple, relation: str, answer: Answer, built_at: int) -> None:
        if len(self.answers) >= self.limit or self.bytes + len(answer.body) > self.max_bytes:
            self.invalidate(self.generation)
        answers, targets, bodies = self.answers, self.targets, self.bodies
        if built_at != self.generation:  # built from data the poller has since replaced
            return
        if answer.etag is not None:
            shared = bodies.get(answer.etag)
            if shared is None:
                bodies[answer.etag] = answer.body
                self.bytes += len(answer.body)
            else:
                answer.body = shared
        targets[key] = answer.target
        answers[(key, relation)] = answer


def relation(viewer: Viewer, target: str | None) -> str:
    """What an answer about `target` depends on: the viewer's relation, not their identity."""
    if target is not None and viewer.user_id == target:
        return "self"
    if viewer.internal:
        return "internal"
    return viewer.kind.value
