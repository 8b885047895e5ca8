"""The troubleshooter page: target + viewer kind + client → the diagnose verdict, cause, fix.

Runs `userphoto.diagnose.diagnose` in the server process (the same function behind
`userphoto diagnose` and `GET /v1/admin/diagnose`) and renders its `to_dict()`.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..diagnose import diagnose
from ..directory.probe import live_directory_check
from ..errors import UserPhotoError
from ..model import HD_SIZES, ClientProfile
from .context import Web

VIEWER_KINDS = (
    ("member", "A member of the organization"),
    ("external", "An external partner's user"),
    ("anonymous", "Anyone (anonymous, e.g. a public IM contact)"),
)
CLIENTS = (
    ("hd", "Lync 2013 / Skype for Business (HD)"),
    ("legacy", "Lync 2010 (legacy, 96 px)"),
    ("web", "Web App / browser"),
)


class TroubleshootPage:
    def __init__(self, web: Web):
        self.web = web

    def routes(self) -> list[BaseRoute]:
        return [Route("/admin/troubleshoot", self.page)]

    async def page(self, request: Request) -> Response:
        try:
            self.web.admin(request)
        except UserPhotoError as exc:
            return self.web.refused(request, exc)
        q = request.query_params
        form = {
            "target": q.get("target", "").strip()[:320],
            "kind": q.get("kind", "member"),
            "viewer": q.get("viewer", "").strip()[:320],
            "external": q.get("external", "").strip()[:253],
            "client": q.get("client", "hd"),
            "size": q.get("size", ""),
        }
        if form["kind"] not in {k for k, _ in VIEWER_KINDS}:
            form["kind"] = "member"
        if form["client"] not in {c.value for c in ClientProfile}:
            form["client"] = "hd"
        result: dict[str, Any] | None = None
        error = ""
        if form["target"]:
            try:
                result = await run_in_threadpool(self._run, form)
            except UserPhotoError as exc:
                error = exc.message
        return self.web.renderer.page(
            request,
            "troubleshoot.html",
            {
                "title": "Troubleshooter",
                "form": form,
                "kinds": VIEWER_KINDS,
                "clients": CLIENTS,
                "sizes": HD_SIZES,
                "result": result,
                "error": error,
            },
        )

    def _run(self, form: dict[str, str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"client": form["client"]}
        if form["size"].isdigit() and int(form["size"]) in HD_SIZES:
            kwargs["size"] = int(form["size"])
        if form["kind"] == "member" and form["viewer"]:
            kwargs["viewer"] = form["viewer"]
        elif form["kind"] == "external":
            if not form["external"]:
                raise UserPhotoError("Name the partner's domain, e.g. fabrikam.example.")
            kwargs["external"] = form["external"]
        elif form["kind"] == "anonymous":
            kwargs["anonymous"] = True
        app = self.web.services.app
        check = live_directory_check(app.settings)
        return diagnose(app, form["target"], directory_check=check, **kwargs).to_dict()
