"""The native API: `/v1/users/{address-or-id}/photo` (+ `/meta`), with `X-Photo-Source`.

GET  /v1/users/{key}/photo?size=N|HRnxn&client=legacy|hd|web&default=initials|404
GET  /v1/users/{key}/photo/meta     → {"source", "size", "sizes", "etag", "updated"}
PUT  /v1/users/{key}/photo          (raw JPEG/PNG/... body; admins, or the user themself)
DELETE /v1/users/{key}/photo

External viewers (partners, anonymous) get one identical 404 for an unknown user, a hidden
one and one with nothing they may see; the generated default is for internal viewers only
(for outsiders it would confirm that the person exists). Web-address pictures are a 302.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidArgument, UserPhotoError
from ..model import Viewer
from ..resolve import Resolution, Source, Verdict, allowed_sizes
from . import default_picture
from .cache import Answer, error_answer, etag_of, image_answer, json_answer, redirect_answer
from .common import Req, Services, client_param, may_write, size_param
from .lookup import Target, check_key

PREFIX = "/v1/users/"
_REFUSED = (Verdict.SKIPPED, Verdict.BLOCKED)
HIDDEN_ANSWER = ("not_found", "No photo is available for this address.")


class NativeApi:
    route = "/v1/users/{user}/photo"  # for the access log and metrics

    def __init__(self, services: Services):
        self.s = services

    def error(self, exc: UserPhotoError) -> Answer:
        extra = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else []
        return error_answer(exc.status, exc.code, exc.message, extra=extra)

    def handle(self, req: Req) -> Answer:
        rest = req.path[len(PREFIX) :]
        key, _, tail = rest.partition("/")
        if tail not in ("photo", "photo/meta", "photo/"):
            return error_answer(404, "no_route", "Unknown path; see /v1/users/{key}/photo.")
        meta = tail == "photo/meta"
        key = check_key(key)
        if req.method in ("GET", "HEAD"):
            return self.get(req, key, meta)
        if meta:
            return error_answer(
                405, "method_not_allowed", "Only GET.", extra=[(b"allow", b"GET, HEAD")]
            )
        if req.method == "PUT":
            return self.put(req, key)
        if req.method == "DELETE":
            return self.delete(req, key)
        return error_answer(
            405,
            "method_not_allowed",
            f"{req.method} is not allowed here.",
            extra=[(b"allow", b"GET, HEAD, PUT, DELETE")],
        )

    # --- reading -----------------------------------------------------------------------------
    def not_visible(self, viewer: Viewer, target: Target | None, reason: str) -> Answer:
        """Internal viewers learn why; external ones get the one no-enumeration answer."""
        uid = target.user.id if target else None
        if not viewer.internal:
            return error_answer(404, *HIDDEN_ANSWER, target=uid, cacheable=True)
        if target is None:
            return error_answer(404, "unknown_user", "No such user.", cacheable=True)
        return error_answer(403, "not_visible", reason, target=uid, cacheable=True)

    def get(self, req: Req, key: str, meta: bool) -> Answer:
        q = req.query
        size = size_param(q.get("size"))
        client = client_param(req)
        default = q.get("default", "initials").lower()
        if default not in ("initials", "404"):
            raise InvalidArgument(f"unknown default {default[:40]!r}; valid: initials, 404")
        viewer = req.viewer
        target = self.s.lookup.target(key, size)
        if target is None:
            return self.not_visible(viewer, None, "")
        res = self.s.lookup.resolve(target, viewer, client, size)
        uid = target.user.id
        if res.source is Source.NONE:
            return self.not_visible(viewer, target, res.trace[0].reason)
        if res.source is Source.DEFAULT and not viewer.internal:
            return self.not_visible(viewer, target, "")
        if meta:
            return self.meta(viewer, target, res)
        if res.source is Source.URL:
            assert res.url is not None
            return redirect_answer(res.url, viewer, target=uid)
        if res.source is Source.DEFAULT and default == "404":
            return error_answer(
                404,
                "no_photo",
                "No photo: "
                + "; ".join(e.reason for e in res.trace if e.verdict in _REFUSED)
                + ".",
                target=uid,
                cacheable=True,
            )
        data = self.bytes_for(target, res, size)
        return image_answer(data, viewer, res.source.value, target=uid)

    def bytes_for(self, target: Target, res: Resolution, size: int | None) -> bytes:
        if res.source is Source.HD:
            assert res.size is not None
            data = self.s.lookup.rendition(target, res.size)
            if data is None:
                raise UserPhotoError("The photo changed while it was read; retry.", status=409)
            return data
        if res.source is Source.DIRECTORY:
            assert target.directory is not None and target.directory.jpeg is not None
            return target.directory.jpeg
        user = target.user
        return default_picture.initials(
            default_picture.initials_of(user.display_name or user.address), user.id, size or 96
        )

    def meta(self, viewer: Viewer, target: Target, res: Resolution) -> Answer:
        sizes: list[int] = []
        if res.source is Source.HD:
            sizes = allowed_sizes(target.sizes, res.cap)
        payload: dict[str, Any] = {  # JSON
            "source": res.source.value,
            "size": res.size,
            "sizes": sizes,
            "etag": None,
            "updated": None,
            "trace": None,
        }
        if res.source in (Source.HD, Source.DIRECTORY):
            data = self.bytes_for(target, res, res.size)
            payload["etag"] = etag_of(data).decode()
        if res.source is Source.HD and target.photo:
            payload["updated"] = target.photo.created.astimezone(UTC).isoformat()
        elif res.source is Source.DIRECTORY and target.directory:
            payload["updated"] = target.directory.seen.astimezone(UTC).isoformat()
            payload["width"], payload["height"] = target.directory.width, target.directory.height
        elif res.source is Source.URL:
            payload["url"] = res.url
        if viewer.internal:
            payload["trace"] = [
                {"step": e.step.value, "verdict": e.verdict.value, "reason": e.reason}
                for e in res.trace
            ]
        else:
            del payload["trace"]
        return json_answer(payload, viewer, target=target.user.id)

    # --- writing -----------------------------------------------------------------------------
    def put(self, req: Req, key: str) -> Answer:
        photos = self.s.app.photos
        if not req.viewer.internal:
            may_write(req.viewer, None, True)
        user = photos.user(key)
        may_write(req.viewer, user.id, self.s.app.settings.self_service)
        photo = photos.set(user.id, req.body, actor=req.viewer.address or "?", via="api")
        return json_answer(
            {
                "version": photo.version,
                "sizes": list(photo.sizes),
                "crop": str(photo.crop),
                "crop_decision": photo.crop_decision.as_json(),
                "checks": [r.as_dict() for r in photo.checks],
                "updated": datetime.now(UTC).isoformat(),
            },
            req.viewer,
            cacheable=False,
        )

    def delete(self, req: Req, key: str) -> Answer:
        photos = self.s.app.photos
        if not req.viewer.internal:
            may_write(req.viewer, None, True)
        user = photos.user(key)
        may_write(req.viewer, user.id, self.s.app.settings.self_service)
        photos.remove(user.id, actor=req.viewer.address or "?", via="api")
        return json_answer({"removed": True}, req.viewer, cacheable=False)
