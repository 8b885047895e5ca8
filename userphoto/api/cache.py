"""Encoded answers (status + headers + bytes) and the in-memory cache that holds them.

An `Answer` is built once, with every header final (strong ETag over the exact bytes,
Cache-Control, Vary, nosniff), so serving a cached one is two ASGI messages and nothing else.
The cache follows the store's per-user change feed (see `server.Follower`): a change drops only
the answers that depend on it, and an answer built from data older than a change that touches
it is never stored, so a build that raced an invalidation cannot leave a stale entry behind.

Long on purpose: the answer value and the cache that bounds, indexes and drops answers are
one unit (each answer's per-user index entries are made and dropped with it).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..answers import cache_control
from ..errors import StoreUnavailable
from ..model import Viewer
from ..resolve import VIEWER_CLASSES, viewer_class

Headers = list[tuple[bytes, bytes]]

NOSNIFF = (b"x-content-type-options", b"nosniff")
VARY_AUTH = (b"vary", b"Authorization")


def etag_of(body: bytes) -> bytes:
    """A strong ETag: it changes exactly when the bytes change."""
    return b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


@dataclass(slots=True)
class Answer:
    status: int
    headers: Headers
    body: bytes = b""
    etag: bytes | None = None
    not_modified: Headers | None = None  # the 304's headers (ETag, caching, Vary)
    target: str | None = None  # id of the user it is about (for the viewer relation)
    cacheable: bool = False
    # The headers as str pairs for the RSGI interface, made on first use.
    rsgi: list[tuple[str, str]] | None = None
    rsgi_304: list[tuple[str, str]] | None = None
    hot: bool = False  # hit since the cache's eviction last looked at it
    cost: int = 0  # bytes charged to the cache for it
    etag_text: str | None = None  # the ETag as str: RSGI hands `If-None-Match` over as str

    def rsgi_headers(self) -> list[tuple[str, str]]:
        """The headers as str pairs, without Content-Length: the server frames the body."""
        headers = self.rsgi
        if headers is None:
            headers = self.rsgi = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in self.headers
                if k != b"content-length"
            ]
        return headers

    def rsgi_not_modified(self) -> list[tuple[str, str]]:
        headers = self.rsgi_304
        if headers is None:
            headers = self.rsgi_304 = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in self.not_modified or []
            ]
        return headers

    def not_modified_for(self, if_none_match: str | bytes | None) -> bool:
        """Whether `If-None-Match` turns this answer into a 304: only a 200 whose ETag it
        names. The one conditional-GET rule of every path (RSGI, ASGI, the web pictures)."""
        if if_none_match is None or self.status != 200:
            return False
        if isinstance(if_none_match, str):
            return self.matches_text(if_none_match)
        return self.matches(if_none_match)

    def matches_text(self, if_none_match: str) -> bool:
        """`matches` for a str header (RSGI): the usual exact match costs no encoding."""
        etag = self.etag_text
        if etag is None:
            if self.etag is None:
                return False
            etag = self.etag_text = self.etag.decode("latin-1")
        return if_none_match == etag or self.matches(if_none_match.encode("latin-1", "replace"))

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


_UNKNOWN: Any = object()
ENTRY_OVERHEAD = 400  # bytes an entry costs beyond its key and body (objects, dict slots)
MAX_KEY_BYTES = 1024  # longer route keys are answered but never cached


def key_size(key: tuple) -> int:
    return sum(len(part) if isinstance(part, str | bytes) else 8 for part in key)


class AnswerCache:
    """Answers by (route key, viewer relation), bounded in entries and bytes, keys included.

    Eviction is second-chance LRU: a hit only sets `answer.hot` (no lock, no reordering on
    the hot path); eviction walks from the oldest entry, gives hot ones one more round and
    drops the rest. Nothing is ever wiped whole: a change drops only the entries it touches
    (`drop_user`), found through two indexes: target user id → keys, and lookup token (an
    address, alias, id or hash a build looked up, found or not) → keys.

    An answer built from data older than a change to its user or lookup tokens is not
    stored (`put` compares the build's start seq with what the change feed has applied).
    Mutations happen under a lock; readers use `get` without it.
    """

    def __init__(self, limit: int = 200_000, max_bytes: int = 256 * 1024 * 1024):
        self.limit = limit
        self.max_bytes = max_bytes
        self.answers: OrderedDict[tuple, Answer] = OrderedDict()
        self.targets: dict[tuple, str | None] = {}  # route key -> target user id
        self.by_user: dict[str, set[tuple]] = {}
        self.by_token: dict[str, set[tuple]] = {}
        self.deps: dict[tuple, tuple[str | None, tuple[str, ...]]] = {}
        self.bodies: dict[bytes, list] = {}  # etag -> [body, references]
        self.bytes = 0
        self.seq = 0  # the last change applied
        self.org_seq = 0  # the last change that dropped everything
        self.touched: dict[str, int] = {}  # user id / token -> seq of its last change
        self.lock = threading.Lock()
        self.hits = self.misses = self.evictions = self.invalidations = 0

    def get(self, key: tuple, relation: str) -> Answer | None:
        answer = self.answers.get((key, relation))
        if answer is not None:
            answer.hot = True
        return answer

    def answer(self, key: tuple, viewer: Viewer) -> Answer | None:
        """The cached answer to route `key` for this viewer, if any (runs on every hit)."""
        target = self.targets.get(key, _UNKNOWN)  # one read: the follower may drop it
        if target is _UNKNOWN:
            return None
        answer = self.answers.get((key, relation(viewer, target)))
        if answer is not None:
            answer.hot = True
        return answer

    def put(
        self,
        key: tuple,
        relation: str,
        answer: Answer,
        built_at: int,
        tokens: tuple[str, ...] = (),
    ) -> bool:
        """Store an answer built from data as of change `built_at`; False if it is stale."""
        size = key_size(key)
        if size > MAX_KEY_BYTES:
            return False
        target = answer.target
        entry = (key, relation)
        with self.lock:
            touched = self.touched
            if built_at < self.org_seq or (
                target is not None and touched.get(target, 0) > built_at
            ):
                return False
            if any(touched.get(t, 0) > built_at for t in tokens):
                return False
            if entry in self.answers:
                self._drop(entry)
            cost = size + ENTRY_OVERHEAD
            if answer.etag is not None:
                shared = self.bodies.get(answer.etag)
                if shared is None:
                    self.bodies[answer.etag] = [answer.body, 1]
                    cost += len(answer.body)
                else:
                    answer.body = shared[0]
                    shared[1] += 1
            else:
                cost += len(answer.body)
            answer.cost = cost
            self.bytes += cost
            self.answers[entry] = answer
            self.targets[key] = target
            self.deps[entry] = (target, tokens)
            if target is not None:
                self.by_user.setdefault(target, set()).add(entry)
            for token in tokens:
                self.by_token.setdefault(token, set()).add(entry)
            self._evict()
        return True

    def _evict(self) -> None:
        answers = self.answers
        while answers and (len(answers) > self.limit or self.bytes > self.max_bytes):
            entry, answer = next(iter(answers.items()))
            if answer.hot:
                answer.hot = False
                answers.move_to_end(entry)
                continue
            self._drop(entry)
            self.evictions += 1

    def _drop(self, entry: tuple) -> None:
        answer = self.answers.pop(entry, None)
        if answer is None:
            return
        self.bytes -= answer.cost
        if answer.etag is not None:
            shared = self.bodies.get(answer.etag)
            if shared is not None:
                shared[1] -= 1
                if shared[1] <= 0:
                    del self.bodies[answer.etag]
        target, tokens = self.deps.pop(entry, (None, ()))
        if target is not None:
            keys = self.by_user.get(target)
            if keys is not None:
                keys.discard(entry)
                if not keys:
                    del self.by_user[target]
        for token in tokens:
            keys = self.by_token.get(token)
            if keys is not None:
                keys.discard(entry)
                if not keys:
                    del self.by_token[token]
        # The route key's target stays while another relation's answer for it remains.
        key = entry[0]
        if key in self.targets and not any((key, r) in self.answers for r in RELATIONS):
            del self.targets[key]

    def drop_user(self, seq: int, user_id: str, tokens: tuple[str, ...] = ()) -> int:
        """A change to one user: drop their answers and those of their lookup tokens."""
        with self.lock:
            self.seq = max(self.seq, seq)
            self._touch(user_id, seq)
            entries = set(self.by_user.get(user_id, ()))
            for token in tokens:
                self._touch(token, seq)
                entries |= self.by_token.get(token, set())
            for entry in entries:
                self._drop(entry)
            self.invalidations += len(entries)
            return len(entries)

    def _touch(self, name: str, seq: int) -> None:
        touched = self.touched
        touched[name] = seq
        if len(touched) > 100_000:  # builds older than this are refused wholesale instead
            self.org_seq = seq
            touched.clear()

    def drop_all(self, seq: int) -> None:
        """A change that can touch every answer (rare)."""
        with self.lock:
            self.seq = self.org_seq = max(self.seq, seq)
            self.invalidations += len(self.answers)
            self.answers = OrderedDict()
            self.targets, self.by_user, self.by_token, self.deps = {}, {}, {}, {}
            self.bodies, self.bytes, self.touched = {}, 0, {}


# Answers are shared by the viewers the resolution rule cannot tell apart (`viewer_class`).
RELATIONS = VIEWER_CLASSES
relation = viewer_class  # (viewer, target user id) -> the cache slot of its answers
