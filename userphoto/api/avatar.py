"""Libravatar / Gravatar-compatible avatars: `GET /avatar/{md5-or-sha256}?s=80&d=mp&f=y`.

The hash is of any address or alias, trimmed and lower-cased. `s`/`size` 1..2048 (default 80).
`d`/`default`: `404`, `mp` (`mm`), `identicon` (`monsterid`, `wavatar`, `retro`, `robohash`
and `pagan` draw an identicon too), `blank`, `initials` (Gravatar's `name`/`initials`
parameters), or an http(s) URL starting with one of `[avatar] default_url_allow` (a 302;
anything else is refused, so this is no open redirect). Without `d`: the generated initials
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

from ..errors import InvalidArgument, UserPhotoError
from ..model import ClientProfile, Viewer
from ..resolve import Source, usable_url
from . import default_picture
from .cache import Answer, image_answer, plain_error, redirect_answer
from .common import Req, Services
from .lookup import Target

PREFIX = "/avatar/"
MAX_SIZE = 2048
DEFAULT_SIZE = 80
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


class AvatarApi:
    def __init__(self, services: Services):
        self.s = services
        allow = services.app.settings.get("avatar", "default_url_allow", [])
        self.allowed_urls = tuple(str(a) for a in allow)

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
            if usable_url(raw) and any(raw.startswith(p) for p in self.allowed_urls):
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
        target = None if force else self.s.lookup.by_hash(digest)
        uid = target.user.id if target else None
        if target is not None:
            res = self.s.lookup.resolve(target, viewer, ClientProfile.WEB, None)
            if res.source is Source.HD:
                made = self.s.lookup.any_size(target, size)
                if made is not None:
                    return image_answer(made[0], viewer, "hd", target=uid)
            elif res.source is Source.DIRECTORY:
                assert target.directory is not None and target.directory.jpeg is not None
                return image_answer(target.directory.jpeg, viewer, "directory", target=uid)
            elif res.source is Source.URL:
                assert res.url is not None
                return redirect_answer(res.url, viewer, target=uid)
            if not (viewer.internal and res.source is Source.DEFAULT):
                target = None  # outsiders' defaults depend on the request only
        return self._default(req, viewer, digest, size, default, target, uid)

    def _default(
        self,
        req: Req,
        viewer: Viewer,
        digest: str,
        size: int,
        default: str | None,
        target: Target | None,
        uid: str | None,
    ) -> Answer:
        """The default picture; `target` is set only when the viewer may see the person."""
        if default is None:
            default = "initials" if target is not None else "mp"
        if default == "404":
            return plain_error(404, _NOT_FOUND, target=uid, cacheable=True)
        if default.startswith(("http://", "https://")):
            return redirect_answer(default, viewer, target=uid, source="default")
        if default in ("mp", "mm"):
            data = default_picture.silhouette(size)
        elif default in _IDENTICON_LIKE:
            data = default_picture.identicon(digest, size)
        elif default == "blank":
            data = default_picture.blank(size)
        else:  # initials
            if target is not None:
                user = target.user
                text = default_picture.initials_of(user.display_name or user.address)
                data = default_picture.initials(text, user.id, size)
            else:
                q = req.query
                given = q.get("initials", "").strip()[:2] or (
                    default_picture.initials_of(q["name"]) if q.get("name") else ""
                )
                data = (
                    default_picture.initials(given.upper(), digest, size)
                    if given and given != "?"
                    else default_picture.silhouette(size)
                )
        return image_answer(data, viewer, "default", target=uid)
