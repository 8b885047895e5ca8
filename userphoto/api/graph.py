"""Microsoft Graph-compatible profile photos under `/v1.0/`.

GET    /v1.0/users/{id|upn}/photo                 metadata of the largest photo
GET    /v1.0/users/{id|upn}/photo/$value          its bytes
GET    /v1.0/users/{id|upn}/photos                every size this viewer may get
GET    /v1.0/users/{id|upn}/photos/{size}         one size's metadata ("240x240")
GET    /v1.0/users/{id|upn}/photos/{size}/$value  its bytes
PUT    /v1.0/users/{id|upn}/photo/$value          image/jpeg or image/png, ≤ [limits] max_bytes
DELETE /v1.0/users/{id|upn}/photo
… and the same under /v1.0/me/ for the caller.

Errors use Graph's shape, `{"error": {"code": "ImageNotFound", "message": ...}}`. External
viewers get one identical ImageNotFound for unknown, hidden and photo-less users. A web-address
picture's `$value` is a 302 to it (we never fetch it).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .. import answers, imaging
from ..answers import Kind, Plan
from ..checks import summary
from ..errors import InvalidArgument, UserPhotoError, unsupported_type
from ..model import HD_SIZES, Viewer, ViewerKind
from ..resolve import Source
from .cache import (
    Answer,
    empty_answer,
    error_answer,
    etag_of,
    image_answer,
    json_answer,
    redirect_answer,
)
from .common import Req, Services, may_write
from .lookup import Target, check_key

PREFIX = "/v1.0/"
_SIZE_ID = re.compile(r"^(\d{1,5})x(\d{1,5})$", re.IGNORECASE)
_NOT_FOUND = ("ImageNotFound", "The photo wasn't found.")
_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ImageNotFound",
    405: "BadRequest",
    409: "ErrorConflict",
    413: "ErrorRequestEntityTooLarge",
    415: "ErrorUnsupportedMediaType",
    422: "ErrorInvalidImage",
}
# application/octet-stream: what the official msgraph-sdk sends for `photo.content.put`; the
# body's own bytes decide (JPEG or PNG) whatever the declared type.
_ACCEPTED_TYPES = (
    "image/jpeg",
    "image/jpg",
    "image/pjpeg",
    "image/png",
    "application/octet-stream",
)


def size_id(text: str) -> int:
    """'240x240' (any case) → 240; anything else → InvalidArgument naming the valid ids."""
    match = _SIZE_ID.match(text)
    valid = ", ".join(f"{s}x{s}" for s in HD_SIZES)
    if not match or match[1] != match[2] or int(match[1]) not in HD_SIZES:
        raise InvalidArgument(f"unknown photo size {text[:40]!r}; valid: {valid}")
    return int(match[1])


class GraphApi:
    route = "/v1.0/users/{user}/photo"  # for the access log and metrics

    def __init__(self, services: Services):
        self.s = services

    def error(self, exc: UserPhotoError) -> Answer:
        code = _CODES.get(exc.status, "BadRequest")
        extra = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else []
        return error_answer(exc.status, code, exc.message, extra=extra)

    def handle(self, req: Req) -> Answer:
        parts = req.path[len(PREFIX) :].split("/")
        if parts and parts[-1] == "":
            parts.pop()
        viewer = req.viewer
        if parts[:1] == ["me"]:
            key = self._me(viewer)
            rest = parts[1:]
        elif parts[:1] == ["users"] and len(parts) >= 2:
            key = check_key(parts[1])
            rest = parts[2:]
        else:
            return error_answer(400, "BadRequest", "Unsupported path under /v1.0/.")
        method = req.method
        read = method in ("GET", "HEAD")
        if rest == ["photo"]:
            if method == "DELETE":
                return self.delete(req, key)
            if read:
                return self.read(req, key, None, value=False, listing=False)
            return self._not_allowed("GET, HEAD, DELETE")
        if rest == ["photo", "$value"]:
            if method == "PUT":
                return self.put(req, key)
            if read:
                return self.read(req, key, None, value=True, listing=False)
            return self._not_allowed("GET, HEAD, PUT")
        if rest[:1] == ["photos"] and len(rest) <= 3 and (len(rest) < 3 or rest[2] == "$value"):
            if not read:
                return self._not_allowed("GET, HEAD")
            if len(rest) == 1:
                return self.read(req, key, None, value=False, listing=True)
            return self.read(req, key, size_id(rest[1]), value=len(rest) == 3, listing=False)
        return error_answer(400, "BadRequest", "Unsupported photo path; see /photo, /photos.")

    @staticmethod
    def _not_allowed(allow: str) -> Answer:
        return error_answer(
            405,
            "BadRequest",
            f"Method not allowed; use {allow}.",
            extra=[(b"allow", allow.encode())],
        )

    @staticmethod
    def _me(viewer: Viewer) -> str:
        if viewer.kind is ViewerKind.ANONYMOUS:
            raise UserPhotoError("/me needs a bearer token.", status=401)
        if viewer.user_id is None:
            raise UserPhotoError("/me is only for users of this organization.", status=403)
        return viewer.user_id

    # --- reading -------------------------------------------------------------------------------
    def _refusal(self, plan: Plan, uid: str | None) -> Answer:
        """Graph's words for a plan that shows nothing."""
        kind = plan.kind
        if kind is Kind.HIDDEN:
            return error_answer(404, *_NOT_FOUND, target=uid, cacheable=True)
        if kind is Kind.UNKNOWN:
            return error_answer(404, "Request_ResourceNotFound", "No such user.", cacheable=True)
        if kind is Kind.REFUSED:
            return error_answer(403, "ErrorAccessDenied", plan.reason, target=uid, cacheable=True)
        code = "ErrorNonExistentMailbox" if kind is Kind.NO_ACCOUNT else "ImageNotFound"
        return error_answer(404, code, plan.reason, target=uid, cacheable=True)

    def read(self, req: Req, key: str, size: int | None, *, value: bool, listing: bool) -> Answer:
        viewer = req.viewer
        target = self.s.lookup.target(key, size)
        _res, plan = answers.graph(
            target.user if target else None,
            viewer,
            size,
            photo_sizes=target.sizes if target else (),
            directory=target.directory if target else None,
        )
        uid = target.user.id if target else None
        if target is None or plan.kind not in (Kind.IMAGE, Kind.REDIRECT):
            return self._refusal(plan, uid)
        if plan.kind is Kind.REDIRECT:
            assert plan.url is not None
            if value:
                return redirect_answer(plan.url, viewer, target=uid)
            entry = {
                "@odata.mediaContentType": "image/jpeg",
                "id": "url",
                "width": None,
                "height": None,
            }
            return json_answer(entry if not listing else {"value": [entry]}, viewer, target=uid)
        if listing:
            sizes: list[int | None] = [None] if plan.source is Source.DIRECTORY else [*plan.sizes]
            entries = [self._meta(target, plan, s) for s in sizes]
            return json_answer({"value": entries}, viewer, target=uid)
        if value:
            data = self.s.lookup.image(target, plan)
            return image_answer(data, viewer, plan.source or "", target=uid)
        return json_answer(self._meta(target, plan, plan.size), viewer, target=uid)

    def _meta(self, target: Target, plan: Plan, size: int | None) -> dict:
        data = self.s.lookup.image(target, replace(plan, size=size))
        if plan.source is Source.DIRECTORY:
            assert target.directory is not None
            width, height = target.directory.width, target.directory.height
        else:
            assert size is not None
            width = height = size
        return {
            "@odata.mediaContentType": "image/jpeg",
            "@odata.mediaEtag": etag_of(data).decode(),
            "id": f"{width}x{height}",
            "width": width,
            "height": height,
        }

    # --- writing -------------------------------------------------------------------------------
    def put(self, req: Req, key: str) -> Answer:
        viewer = req.viewer
        if not viewer.internal:
            may_write(viewer, None, True)
        content_type = (req.header(b"content-type") or "").split(";")[0].strip().lower()
        if content_type not in _ACCEPTED_TYPES:
            raise UserPhotoError(
                "Content-Type must be image/jpeg, image/png or application/octet-stream, "
                f"not {content_type[:60]!r}.",
                status=415,
            )
        kind = imaging.sniff(req.body)
        if kind is not None and kind not in ("JPEG", "PNG"):
            raise unsupported_type(f"a {kind} image", accepted="JPEG or PNG")  # Graph's two
        photos = self.s.app.photos
        user = photos.user(key)
        may_write(viewer, user.id, self.s.app.settings.self_service)
        photo = photos.set(user.id, req.body, actor=viewer.address or "?", via="graph")
        # Graph answers a photo PUT with an empty 200; how the crop was chosen rides in
        # headers, so Graph clients are unaffected and an admin script can still check it.
        decision = photo.crop_decision
        return empty_answer(
            200,
            [
                (b"x-userphoto-crop", str(photo.crop).encode()),
                (b"x-userphoto-crop-reason", decision.reason.value.encode()),
                (b"x-userphoto-crop-confidence", f"{decision.confidence:.3f}".encode()),
                (b"x-userphoto-crop-guess", b"true" if decision.guess else b"false"),
                # The automatic photo checks, `id=outcome, ...` (docs/checks.md).
                (b"x-photo-checks", summary(photo.checks).encode()),
            ],
        )

    def delete(self, req: Req, key: str) -> Answer:
        viewer = req.viewer
        if not viewer.internal:
            may_write(viewer, None, True)
        photos = self.s.app.photos
        user = photos.user(key)
        may_write(viewer, user.id, self.s.app.settings.self_service)
        photos.remove(user.id, actor=viewer.address or "?", via="graph")
        return empty_answer(204)
