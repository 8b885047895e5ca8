"""The photo page (my own, or any user's for admins) and what it posts to.

Upload → preview (face-aware crop suggested by the server) → adjust the crop → preview
again → save or cancel: the Set-UserPhoto lifecycle, all through `Photos`, so the web
enforces exactly the limits and messages of the CLI and the API. Images on the pages come
from `/web/users/{key}/photo` (`image.py`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..api.common import may_write
from ..errors import InvalidArgument, UserPhotoError, WorkersBusy
from ..model import (
    MASTER_MAX,
    MEETING_SIZE,
    SD_MAX,
    Account,
    ClientProfile,
    CropBox,
    Photo,
    PhotoState,
    Picture,
    User,
    Viewer,
    ViewerKind,
    Visibility,
)
from ..resolve import URL_RULE, Source, usable_url
from .context import Web, local_path, read_form, read_upload

# What the preview shows, as each client would: (size, label, note).
PREVIEWS: tuple[tuple[int, str, str], ...] = (
    (SD_MAX, "Legacy client", f"Lync 2010 and the directory: {SD_MAX} px"),
    (MEETING_SIZE, "Meeting", f"contact cards and meetings: {MEETING_SIZE} px"),
    (MASTER_MAX, "HD", f"Lync 2013 / Skype for Business full size: {MASTER_MAX} px"),
)
SOURCE_TEXT = {
    Source.HD: "the HD photo",
    Source.DIRECTORY: "the directory photo (thumbnailPhoto)",
    Source.URL: "the picture from a web address",
    Source.DEFAULT: "the generated initials picture",
    Source.NONE: "no picture (hidden by the picture or visibility setting)",
}
# An internal colleague, to tell what the organization sees (not the user themself).
COLLEAGUE = Viewer(ViewerKind.MEMBER, "colleague@internal", None)


def photo_url(user: User, size: int, *, version: int | str = 0, preview: bool = False) -> str:
    url = f"/web/users/{quote(user.id, safe='')}/photo?size={size}&v={version}"
    return url + "&preview=1" if preview else url


def preview_payload(user: User, photo: Photo) -> dict[str, Any]:
    sizes = set(photo.sizes)
    return {
        "version": photo.version,
        "crop": {"x": photo.crop.x, "y": photo.crop.y, "size": photo.crop.size},
        "crop_decision": photo.crop_decision.as_json(),
        "checks": [r.as_dict() for r in photo.checks],
        "source": {
            "width": photo.source_width,
            "height": photo.source_height,
            "format": photo.source_format,
        },
        "sizes": list(photo.sizes),
        "previews": {
            str(size): photo_url(user, size, version=photo.version, preview=True)
            for size, _label, _note in PREVIEWS
        },
        "capped": [size for size, _l, _n in PREVIEWS if size not in sizes],
    }


class PhotoPages:
    def __init__(self, web: Web):
        self.web = web
        self.services = web.services
        self._uploads = 0  # previews being read or waiting for an image worker

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/me", self.my_page),
            Route("/admin/users/{key}", self.user_page),
            Route("/web/users/{key}/preview", self.preview, methods=["POST"]),
            Route("/web/users/{key}/save", self.save, methods=["POST"]),
            Route("/web/users/{key}/cancel", self.cancel, methods=["POST"]),
            Route("/web/users/{key}/remove", self.remove, methods=["POST"]),
            Route("/web/users/{key}/clear-record", self.clear_record, methods=["POST"]),
            Route("/web/users/{key}/settings", self.settings, methods=["POST"]),
        ]

    # --- pages ---------------------------------------------------------------------------------
    async def my_page(self, request: Request) -> Response:
        try:
            viewer = self.web.member(request)
        except UserPhotoError as exc:
            return self.web.refused(request, exc)
        if viewer.user_id is None:
            return self.web.renderer.page(
                request,
                "error.html",
                {
                    "title": "No photo of your own",
                    "message": f"{viewer.address} is an administrator address without a "
                    "user, so it has no photo. Open the directory to change anyone's photo.",
                    "link": ("/admin", "Open the directory"),
                },
            )
        return await self._page(request, viewer, viewer.user_id, own=True)

    async def user_page(self, request: Request) -> Response:
        try:
            viewer = self.web.admin(request)
            return await self._page(request, viewer, request.path_params["key"], own=False)
        except UserPhotoError as exc:
            return self.web.refused(request, exc)

    async def _page(self, request: Request, viewer: Viewer, key: str, *, own: bool) -> Response:
        # Store reads and the resolution: off the event loop, like every store read.
        context = await run_in_threadpool(self._page_context, request, viewer, key, own)
        return self.web.renderer.page(request, "photo.html", context)

    def _page_context(
        self, request: Request, viewer: Viewer, key: str, own: bool
    ) -> dict[str, object]:
        app = self.services.app
        user = self.web.photos.user(key)
        target = self.services.lookup.load(user)
        preview = app.store.get_photo(user.id, PhotoState.PREVIEW)
        seen = self.services.lookup.resolve(target, COLLEAGUE, ClientProfile.HD, MEETING_SIZE)
        can_upload = True
        reason = ""
        try:
            may_write(viewer, user.id, app.settings.self_service)
        except UserPhotoError as exc:
            can_upload, reason = False, exc.message
        if user.account in (Account.ABSENT, Account.DISABLED):
            can_upload = False
            reason = (
                f"This account's photo store is {user.account.value}, so it cannot hold "
                "photos. An administrator can enable it with "
                f"`userphoto user set {user.address} --account hd`."
            )
        limits = app.settings.limits
        version = target.photo.version if target.photo else 0
        return {
            "title": "My photo" if own else user.display_name or user.address,
            "own": own,
            "user": user,
            "photo": target.photo,
            "directory": target.directory,
            "preview": preview,
            "preview_json": preview_payload(user, preview) if preview else None,
            "current_url": photo_url(user, MEETING_SIZE, version=f"{version}-{seen.source.value}"),
            "sees": SOURCE_TEXT[seen.source],
            "source": seen.source.value,
            "can_upload": can_upload,
            "cannot_reason": reason,
            "previews": PREVIEWS,
            "max_mb": f"{limits.max_bytes / (1024 * 1024):.0f}",
            "max_bytes": limits.max_bytes,
            "min_side": limits.min_side,
            "sd_only": user.account is Account.SD_ONLY,
            "sd_max": SD_MAX,
            "pictures": list(Picture),
            "visibilities": list(Visibility),
            "back": request.url.path,
            "key": user.id,
        }

    # --- writes --------------------------------------------------------------------------------
    async def _writer(
        self, request: Request, key: str, *, photo: bool = True
    ) -> tuple[Viewer, User]:
        """Who writes, and whose photo (or settings): refused unless they may."""
        viewer = self.web.sessions.viewer(request)
        user = await run_in_threadpool(self.web.photos.user, key) if viewer.internal else None
        may_write(viewer, user.id if user else None, not photo or self._self_service)
        assert user is not None
        return viewer, user

    @property
    def _self_service(self) -> bool:
        return self.services.app.settings.self_service

    async def preview(self, request: Request) -> Response:
        """Raw image body (+ `?crop=X,Y,SIZE`) → stored preview; JSON with the crop used."""
        self.web.sessions.check_csrf(request)
        viewer, user = await self._writer(request, request.path_params["key"])
        crop_text = request.query_params.get("crop", "").strip()
        try:
            crop = CropBox.parse(crop_text) if crop_text else None
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        # The API's back-pressure: bodies held while waiting for an image worker are bounded
        # by the workers and their queue; past that, 503 + Retry-After before reading one.
        pool = self.services.app.pool
        if self._uploads >= pool.size + pool.max_waiting:
            raise WorkersBusy("Too many uploads are in progress; try again shortly.")
        self._uploads += 1  # the event loop's thread only: no lock needed
        try:
            data = await read_upload(request, self.services.app.settings.limits.max_bytes)
            photo = await run_in_threadpool(
                lambda: self.web.photos.set(
                    user.id, data, preview=True, crop=crop, actor=viewer.address or "?", via="web"
                )
            )
        finally:
            self._uploads -= 1
        return JSONResponse(preview_payload(user, photo), headers=_NO_STORE)

    async def _form_action(self, request: Request, action: str) -> Response:
        form = await read_form(request)
        self.web.sessions.check_csrf(request, form)
        back = local_path(form.get("back", "/me"))
        try:
            viewer, user = await self._writer(request, request.path_params["key"])
            actor = viewer.address or "?"
            if action == "save":
                photo = await run_in_threadpool(
                    lambda: self.web.photos.save(user.id, actor=actor, via="web")
                )
                message = f"Saved. Everyone now sees version {photo.version}."
            elif action == "cancel":
                await run_in_threadpool(
                    lambda: self.web.photos.cancel(user.id, actor=actor, via="web")
                )
                message = "Preview discarded; the saved photo is unchanged."
            elif action == "remove":
                await run_in_threadpool(
                    lambda: self.web.photos.remove(user.id, actor=actor, via="web")
                )
                message = "Photo removed."
            else:
                await run_in_threadpool(
                    lambda: self.web.photos.clear_record(user.id, actor=actor, via="web")
                )
                message = "Removal record cleared: the directory photo shows again."
            self.web.sessions.flash(request, message)
        except UserPhotoError as exc:
            self.web.sessions.flash(request, exc.message, "error")
        return self.web.renderer.redirect(request, back)

    async def save(self, request: Request) -> Response:
        return await self._form_action(request, "save")

    async def cancel(self, request: Request) -> Response:
        return await self._form_action(request, "cancel")

    async def remove(self, request: Request) -> Response:
        return await self._form_action(request, "remove")

    async def clear_record(self, request: Request) -> Response:
        return await self._form_action(request, "clear_record")

    async def settings(self, request: Request) -> Response:
        form = await read_form(request)
        self.web.sessions.check_csrf(request, form)
        back = local_path(form.get("back", "/me"))
        try:
            viewer, user = await self._writer(request, request.path_params["key"], photo=False)
            updated = _settings(user, form)
            if updated != user:
                await run_in_threadpool(
                    lambda: self.services.app.store.update_user(
                        updated, actor=viewer.address or "?", via="web"
                    )
                )
            self.web.sessions.flash(request, "Settings saved.")
        except UserPhotoError as exc:
            self.web.sessions.flash(request, exc.message, "error")
        return self.web.renderer.redirect(request, back)


def _settings(user: User, form: dict[str, str]) -> User:
    try:
        picture = Picture(form.get("picture", user.picture.value))
        visibility = Visibility(form.get("visibility", user.visibility.value))
    except ValueError:
        raise InvalidArgument("Choose one of the offered picture and visibility options.") from None
    url = form.get("picture_url", "").strip() or None
    if url is not None and not usable_url(url):
        raise InvalidArgument(URL_RULE)
    if picture is Picture.URL and url is None:
        raise InvalidArgument("'Picture from a web address' needs the web address of the photo.")
    return replace(user, picture=picture, visibility=visibility, picture_url=url)


_NO_STORE = {"cache-control": "no-store"}
