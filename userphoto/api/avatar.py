"""Libravatar / Gravatar-compatible avatars: `GET /avatar/{md5-or-sha256}?s=80&d=mp&f=y`.

The hash is of any address or alias, trimmed and lower-cased. `s`/`size` 1..2048 (default 80).
`d`/`default`: `404`, `mp` (`mm`), `identicon` (`monsterid`, `wavatar`, `retro`, `robohash`
and `pagan` draw an identicon too), `blank`, `initials` (Gravatar's `name`/`initials`
parameters), or an http(s) URL admitted by `[avatar] default_url_allow` (a 302; anything
else is refused, so this is no open redirect). Entries are URLs compared parsed: the same
scheme, the same host (or, written `https://*.cdn.example/`, any subdomain of it), the same
port and a path under the entry's path — `https://cdn.example` does not admit
`https://cdn.example.evil.net`. Without `d`: the generated initials
for internal viewers when the user chose the default picture, else `mp`. `f=y` forces the
default.

Sizes: a stored rendition when the size is one of the HD sizes, else made once from the
master (the largest rendition) by downscaling and cached. **Never upscaled**: above the
master's size (648, or less when the upload was smaller) the master itself is served and the
client scales it, as the design forbids blur from upscaling.

Privacy: anonymous and partner viewers see only what visibility 'everyone' allows and never a
directory-only photo. For them every default is drawn from the request alone (hash, `name`),
so an unknown hash, a hidden user and a user with nothing visible get identical answers.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import answers
from ..answers import Kind, Plan
from ..errors import InvalidArgument, UserPhotoError
from ..model import AVATAR_DEFAULT_SIZE, Viewer
from ..resolve import Source, usable_url
from . import default_picture
from .cache import Answer, image_answer, plain_error, redirect_answer
from .common import Req, Services
from .lookup import Target

PREFIX = "/avatar/"
MAX_SIZE = 2048
DEFAULT_SIZE = AVATAR_DEFAULT_SIZE
GENERATED_MAX_BYTES = 32 * 1024 * 1024
_HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{64})$")
_IDENTICON_LIKE = {"identicon", "monsterid", "wavatar", "retro", "robohash", "pagan"}
_KEYWORDS = {"404", "mp", "mm", "blank", "initials", *_IDENTICON_LIKE}
_NOT_FOUND = b"Not found.\n"


def parse_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SIZE:
        raise InvalidArgument(
            f"size must be a whole number from 1 to {MAX_SIZE} (got {raw[:20]!r})"
        )
    return int(raw)


@dataclass(frozen=True)
class UrlRule:
    """One `[avatar] default_url_allow` entry, parsed: scheme, host (exact, or any subdomain
    of `suffix` when written `*.suffix`), port, and a path prefix."""

    scheme: str
    host: str
    wildcard: bool
    port: int | None
    path: str

    @classmethod
    def parse(cls, text: str) -> UrlRule:
        parts = urlsplit(text.strip())
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host or parts.username is not None:
            raise ValueError(
                f"[avatar] default_url_allow entry {text!r} is not an http(s) URL like "
                "https://cdn.example/avatars/ or https://*.cdn.example/"
            )
        wildcard = host.startswith("*.")
        return cls(parts.scheme, host[2:] if wildcard else host, wildcard, parts.port, parts.path)

    def admits(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() != self.scheme or parts.username is not None or port != self.port:
            return False
        if self.wildcard:
            if not host.endswith("." + self.host):
                return False
        elif host != self.host:
            return False
        path, prefix = parts.path or "/", self.path or "/"
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path == prefix or path.startswith(prefix + "/")


class Generated:
    """Generated default pictures by (kind, size, key), least recently made dropped first."""

    def __init__(self, max_bytes: int = GENERATED_MAX_BYTES):
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[str, int, str], make: Callable[[], bytes]) -> bytes:
        data = self.items.get(key)
        if data is not None:
            return data
        data = make()
        with self.lock:
            if key not in self.items:
                self.items[key] = data
                self.bytes += len(data) + len(key[2]) + 100
            while self.bytes > self.max_bytes and self.items:
                old_key, old = self.items.popitem(last=False)
                self.bytes -= len(old) + len(old_key[2]) + 100
        return data


class AvatarApi:
    route = "/avatar/{hash}"  # for the access log and metrics

    def __init__(self, services: Services):
        self.s = services
        allow = services.app.settings.get("avatar", "default_url_allow", [])
        self.allowed_urls = tuple(UrlRule.parse(str(a)) for a in allow)
        self.generated = Generated()

    def error(self, exc: UserPhotoError) -> Answer:
        extra = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else []
        return plain_error(exc.status, exc.message.encode() + b"\n", extra=extra)

    def _default_param(self, req: Req) -> str | None:
        q = req.query
        raw = q.get("d", q.get("default"))
        if raw is None or raw == "":
            return None
        lowered = raw.lower()
        if lowered in _KEYWORDS:
            return lowered
        if lowered.startswith(("http://", "https://")):
            if usable_url(raw) and any(rule.admits(raw) for rule in self.allowed_urls):
                return raw
            raise InvalidArgument(
                "d is a URL that is not allow-listed ([avatar] default_url_allow)."
            )
        valid = ", ".join(sorted(_KEYWORDS - {"mm"}))
        raise InvalidArgument(f"unknown default {raw[:40]!r}; valid: {valid}, or an allowed URL")

    def handle(self, req: Req) -> Answer:
        if req.method not in ("GET", "HEAD"):
            return plain_error(405, b"Only GET.\n", extra=[(b"allow", b"GET, HEAD")])
        digest = req.path[len(PREFIX) :].lower()
        for ext in (".jpg", ".jpeg", ".png"):
            digest = digest.removesuffix(ext)
        if not _HASH.match(digest):
            raise InvalidArgument("The avatar key must be an MD5 (32) or SHA-256 (64) hex digest.")
        q = req.query
        size = parse_size(q.get("s", q.get("size")))
        default = self._default_param(req)
        force = q.get("f", q.get("forcedefault", "")).lower() in ("y", "yes", "true", "1")
        viewer = req.viewer
        target = None if force else self.s.lookup.by_hash(digest, size)
        uid = target.user.id if target else None
        res, plan = answers.avatar(
            target.user if target else None,
            viewer,
            size,
            photo_sizes=target.sizes if target else (),
            directory=target.directory if target else None,
            default=default,
        )
        if target is not None and plan.source is Source.HD:
            assert plan.size is not None
            made = self.s.lookup.any_size(target, plan.size)
            if made is not None:
                return image_answer(made[0], viewer, "hd", target=uid)
            plan = answers.avatar_default(viewer, size, default)  # it changed while read
        elif target is not None and plan.source is Source.DIRECTORY:
            return image_answer(self.s.lookup.image(target, plan), viewer, "directory", target=uid)
        elif plan.kind is Kind.REDIRECT:
            assert plan.url is not None
            return redirect_answer(plan.url, viewer, target=uid, source=plan.source or "url")
        known = target if answers.knows_user(viewer, res) else None  # else: from the request
        return self._default(req, viewer, digest, plan, known, uid)

    def _default(
        self,
        req: Req,
        viewer: Viewer,
        digest: str,
        plan: Plan,
        target: Target | None,
        uid: str | None,
    ) -> Answer:
        """The default picture `plan` names; `target` is set only when the viewer may see
        the person."""
        if plan.kind is Kind.NO_PHOTO:
            return plain_error(404, _NOT_FOUND, target=uid, cacheable=True)
        size, default = plan.size or DEFAULT_SIZE, plan.picture
        gen = self.generated
        if default in ("mp", "mm"):
            data = gen.get(("mp", size, ""), lambda: default_picture.silhouette(size))
        elif default in _IDENTICON_LIKE:
            data = gen.get(
                ("identicon", size, digest), lambda: default_picture.identicon(digest, size)
            )
        elif default == "blank":
            data = gen.get(("blank", size, ""), lambda: default_picture.blank(size))
        else:  # initials
            if target is not None:
                user = target.user
                text = default_picture.initials_of(user.display_name or user.address)
                seed = user.id
            else:
                q = req.query
                given = q.get("initials", "").strip()[:2] or (
                    default_picture.initials_of(q["name"]) if q.get("name") else ""
                )
                text, seed = given.upper(), digest
            if text and text != "?":
                data = gen.get(
                    ("initials", size, f"{text}\x00{seed}"),
                    lambda: default_picture.initials(text, seed, size),
                )
            else:
                data = gen.get(("mp", size, ""), lambda: default_picture.silhouette(size))
        return image_answer(data, viewer, "default", target=uid)
