"""Sign-in and sign-out. Today: a member or admin bearer token, typed into a small form.

The token is checked by `Authenticator` exactly as an API request's would be, then kept in
the encrypted session cookie (never in a URL, a page or a log). Another method (OIDC) would
add its own routes here and a `session.IDENTIFY` entry; the pages do not change.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import UserPhotoError
from ..model import ViewerKind
from .context import Web, read_form
from .photo import _local
from .session import fresh


class SignInPages:
    def __init__(self, web: Web):
        self.web = web

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/signin", self.form, methods=["GET"]),
            Route("/signin", self.sign_in, methods=["POST"]),
            Route("/signout", self.sign_out, methods=["POST"]),
        ]

    async def home(self, request: Request) -> Response:
        viewer = self.web.sessions.viewer(request)
        if viewer.admin:
            return self.web.renderer.redirect(request, "/admin")
        if viewer.internal:
            return self.web.renderer.redirect(request, "/me")
        return self.web.renderer.redirect(request, "/signin")

    def _form(
        self, request: Request, error: str = "", status: int = 200, next_path: str = ""
    ) -> Response:
        return self.web.renderer.page(
            request,
            "signin.html",
            {
                "title": "Sign in",
                "error": error,
                "next": _local(next_path or request.query_params.get("next", "/")),
            },
            status,
        )

    async def form(self, request: Request) -> Response:
        return self._form(request)

    async def sign_in(self, request: Request) -> Response:
        form = await read_form(request)
        self.web.sessions.check_csrf(request, form)
        token = form.get("token", "").strip()
        back = form.get("next", "")
        if not token:
            return self._form(request, "Paste your token (it starts with upt_).", 400, back)
        try:
            viewer = self.web.services.auth.from_token(token)
        except UserPhotoError as exc:
            return self._form(request, exc.message, 401, back)
        if viewer.kind not in (ViewerKind.MEMBER, ViewerKind.ADMIN):
            return self._form(
                request, "Only member and admin tokens can sign in to these pages.", 403, back
            )
        # A brand-new session: new CSRF token, nothing carried over from before sign-in.
        request.state.session = fresh("token", token)
        request.state.viewer = viewer
        self.web.sessions.flash(request, f"Signed in as {viewer.address}.")
        default = "/admin" if viewer.admin else "/me"
        target = _local(form.get("next", "")) if form.get("next") not in ("", "/") else default
        return self.web.renderer.redirect(request, target)

    async def sign_out(self, request: Request) -> Response:
        form = await read_form(request)
        self.web.sessions.check_csrf(request, form)
        request.state.session = fresh()
        self.web.sessions.flash(request, "Signed out.")
        return self.web.renderer.redirect(request, "/signin")
