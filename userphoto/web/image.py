"""The pictures on the web pages: `/web/users/{key}/photo`, for the session's viewer.

A page shows what the APIs would serve this viewer: the same `Lookup` reads and the same
`resolve` rule, called directly (no request is forged for an API handler). The photo hot path
stays bearer-only; cookies are accepted here, so answers vary by Cookie and stay private.
`?preview=1` shows the pending preview to whoever may change the photo; `?url=0` (listings)
draws initials instead of sending the browser to another site.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import answers
from ..answers import Kind
from ..api.cache import Answer
from ..api.common import may_write, size_param
from ..api.lookup import check_key, initials
from ..errors import NoPreview, NotFound, UnknownUser, UserPhotoError
from ..model import ANONYMOUS, ClientProfile, PhotoState, Viewer
from ..photos import Photos
from .context import Web

# What an outsider learns about a user they may not see, whoever it is (no enumeration).
HIDDEN = "No photo is available for this address."
LISTING_SIZE = 48  # initials standing in for a web-address picture in listings


class PhotoImages:
    def __init__(self, web: Web):
        self.web = web
        self.services = web.services

    def routes(self) -> list[BaseRoute]:
        return [Route("/web/users/{key}/photo", self.image)]

    async def image(self, request: Request) -> Response:
        viewer = self.web.sessions.viewer(request)
        key = request.path_params["key"]
        q = request.query_params
        if q.get("preview"):
            return await run_in_threadpool(self.preview, viewer, key, q.get("size"))
        size = size_param(q.get("size"))
        follow_url = q.get("url") != "0"
        answer = await run_in_threadpool(self.answer, viewer, key, size, follow_url)
        if answer is None:  # a web-address picture in a listing: initials stand in
            picture = await run_in_threadpool(
                lambda: initials(self.web.photos.user(key), size or LISTING_SIZE)
            )
            return Response(picture, media_type="image/jpeg", headers=PRIVATE)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in answer.headers}
        headers["vary"] = "Cookie"  # the viewer comes from the session cookie here
        if answer.not_modified_for(request.headers.get("if-none-match")):
            return Response(status_code=304, headers={"etag": headers.get("etag", "")})
        return Response(answer.body, answer.status, headers=headers)

    def answer(self, viewer: Viewer, key: str, size: int | None, follow_url: bool) -> Answer | None:
        """What this viewer sees of `key` at `size` (HD client), as the native API serves it;
        None for a web-address picture when `follow_url` is off."""
        lookup = self.services.lookup
        target = lookup.target(check_key(key))
        _res, plan = answers.native(
            target.user if target else None,
            viewer,
            ClientProfile.HD,
            size,
            photo_sizes=target.sizes if target else (),
            directory=target.directory if target else None,
        )
        if plan.kind is Kind.UNKNOWN:
            raise UnknownUser("No such user.")
        if plan.kind is Kind.REFUSED:
            raise UserPhotoError(plan.reason, code="not_visible", status=403)
        if target is None or plan.kind is Kind.HIDDEN:
            raise NotFound(HIDDEN)
        if plan.kind is Kind.REDIRECT and not follow_url:
            return None
        return lookup.answer(viewer, target, plan)

    def preview(self, viewer: Viewer, key: str, size: str | None) -> Response:
        if viewer is ANONYMOUS:
            raise UserPhotoError("Sign in first.", code="unauthorized", status=401)
        user = self.web.photos.user(key)
        may_write(viewer, user.id, True)
        store = self.services.app.store
        photo = store.get_photo(user.id, PhotoState.PREVIEW)
        if photo is None:
            raise NoPreview(f"{user.address} has no pending preview.")
        # The largest rendition up to the size asked (sd_only accounts stop at 96).
        data = store.get_rendition(photo.id, Photos.fit(photo, size_param(size)))
        if data is None:
            raise NoPreview(f"{user.address}'s preview changed; reload the page.")
        return Response(data, media_type="image/jpeg", headers=PRIVATE)


PRIVATE = {
    "cache-control": "private, max-age=300",
    "x-content-type-options": "nosniff",
    "vary": "Cookie",
}
