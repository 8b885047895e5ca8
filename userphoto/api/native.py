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

from .. import answers
from ..answers import Kind, Plan
from ..errors import InvalidArgument, UserPhotoError
from ..model import Viewer
from ..resolve import Resolution, Source, allowed_sizes
from .cache import Answer, error_answer, etag_of, json_answer
from .common import Req, Services, client_param, may_write, size_param
from .lookup import Target, check_key

PREFIX = "/v1/users/"
_UNSEEN = (Kind.UNKNOWN, Kind.REFUSED, Kind.HIDDEN)
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
    def get(self, req: Req, key: str, meta: bool) -> Answer:
        q = req.query
        size = size_param(q.get("size"))
        client = client_param(req)
        default = q.get("default", "initials").lower()
        if default not in ("initials", "404"):
            raise InvalidArgument(f"unknown default {default[:40]!r}; valid: initials, 404")
        viewer = req.viewer
        target = self.s.lookup.target(key, size)
        res, plan = answers.native(
            target.user if target else None,
            viewer,
            client,
            size,
            photo_sizes=target.sizes if target else (),
            directory=target.directory if target else None,
            no_default=default == "404" and not meta,
        )
        if target is None or res is None or plan.kind in _UNSEEN:
            return self.refusal(plan, target)
        if meta:
            return self.meta(viewer, target, res)
        if plan.kind is Kind.NO_PHOTO:
            return self.refusal(plan, target)
        return self.s.lookup.answer(viewer, target, plan)

    def refusal(self, plan: Plan, target: Target | None) -> Answer:
        """The native API's words for a plan that shows nothing."""
        uid = target.user.id if target else None
        if plan.kind is Kind.UNKNOWN:
            return error_answer(404, "unknown_user", "No such user.", cacheable=True)
        if plan.kind is Kind.REFUSED:
            return error_answer(403, "not_visible", plan.reason, target=uid, cacheable=True)
        if plan.kind is Kind.NO_PHOTO:
            return error_answer(404, "no_photo", plan.reason, target=uid, cacheable=True)
        return error_answer(404, *HIDDEN_ANSWER, target=uid, cacheable=True)

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
            data = self.s.lookup.image(target, Plan(Kind.IMAGE, res.source, res.size))
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
