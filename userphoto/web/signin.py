"""Sign-in and sign-out: the organization's identity provider (OpenID Connect), or a token.

- OpenID Connect (when `[oidc] issuer` is set): `/signin/oidc` sends the browser to the
  provider (authorization code flow with PKCE, a fresh state and nonce kept in the session);
  `/signin/oidc/callback` checks the state, trades the code for tokens, verifies the id_token
  (`oidc.OidcProvider`) and finds the user; any failure is a page saying what happened, and
  no session. Sign-out ends our session and then, where the provider offers it, the
  provider's (RP-initiated logout).
- A member or admin bearer token typed into the form: checked by `Authenticator` exactly as
  an API request's would be, then kept in the encrypted session cookie (never in a URL, a
  page or a log). Tokens stay for the API and the CLI.
- Every sign-in is recorded in the store (`Sessions.begin`) and sign-out deletes the record
  (`Sessions.end`), so a copy of the cookie stops working on every node.
- Every refusal is logged, one line with its reason (never a token or code), and the page
  says the same reason in plain words.
- The provider's callback and sign-out return addresses are built from `[server]
  public_url` when set (required behind a reverse proxy, whose upstream name the request
  would otherwise carry), else from the request's own URL.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import replace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import UserPhotoError
from ..model import Viewer, ViewerKind
from ..oidc import OidcProvider, Pending, id_token_of, session_credential
from .context import Web, local_path, read_form
from .session import Session, fresh

log = logging.getLogger(__name__)

CALLBACK = "/signin/oidc/callback"


class SignInPages:
    def __init__(self, web: Web):
        self.web = web

    @property
    def oidc(self) -> OidcProvider | None:
        return self.web.services.app.oidc

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/signin", self.form, methods=["GET"]),
            Route("/signin", self.sign_in, methods=["POST"]),
            Route("/signin/oidc", self.oidc_start, methods=["GET"]),
            Route(CALLBACK, self.oidc_callback, methods=["GET"]),
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
                "next": local_path(next_path or request.query_params.get("next", "/")),
                "oidc_label": self.oidc.config.label if self.oidc else "",
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
        sessions = self.web.sessions
        try:
            # A token's first check reads the store: never on the event loop.
            viewer = await run_in_threadpool(self.web.services.auth.from_token, token)
        except UserPhotoError as exc:
            log.warning("sign-in refused (token, %s): %s", exc.code, exc.message)
            return self._form(request, exc.message, 401, back)
        if viewer.kind not in (ViewerKind.MEMBER, ViewerKind.ADMIN):
            log.warning("sign-in refused (token): a %s token cannot sign in", viewer.kind.value)
            return self._form(
                request, "Only member and admin tokens can sign in to these pages.", 403, back
            )
        # A brand-new session: new CSRF token, nothing carried over from before sign-in.
        request.state.session = await run_in_threadpool(sessions.begin, viewer, "token", token)
        request.state.viewer = viewer
        return self._signed_in(request, viewer, form.get("next", ""))

    def _signed_in(self, request: Request, viewer: Viewer, next_path: str) -> Response:
        """After any sign-in: say who, and go where the person was going (or their start)."""
        self.web.sessions.flash(request, f"Signed in as {viewer.address}.")
        default = "/admin" if viewer.admin else "/me"
        target = local_path(next_path) if next_path not in ("", "/") else default
        return self.web.renderer.redirect(request, target)

    # --- OpenID Connect ------------------------------------------------------------------------
    def _site(self, request: Request) -> str:
        """This site's address as browsers see it: `[server] public_url`, else the request's."""
        return self.web.sessions.public_url or str(request.base_url).rstrip("/")

    def _redirect_uri(self, request: Request) -> str:
        assert self.oidc is not None
        return self.oidc.config.redirect_uri or self._site(request) + CALLBACK

    def _refused(self, request: Request, message: str, status: int, code: str = "oidc") -> Response:
        """A sign-in that did not happen: logged, the reason on the sign-in page, no session."""
        log.warning("sign-in refused (oidc, %s): %s", code, message)
        request.state.session = fresh()
        return self._form(request, message, status)

    async def oidc_start(self, request: Request) -> Response:
        if self.oidc is None:
            return self._refused(request, "Sign-in with an identity provider is not set up.", 404)
        oidc = self.oidc
        next_path = local_path(request.query_params.get("next", ""))
        try:
            url, pending = await run_in_threadpool(
                lambda: oidc.start(self._redirect_uri(request), next_path)
            )
        except UserPhotoError as exc:
            return self._refused(request, exc.message, exc.status, exc.code)
        session = self.web.sessions.current(request)
        request.state.session = replace(session, pending=pending.dumps())
        return self.web.renderer.redirect(request, url)

    async def oidc_callback(self, request: Request) -> Response:
        if self.oidc is None:
            return self._refused(request, "Sign-in with an identity provider is not set up.", 404)
        oidc = self.oidc
        query = request.query_params
        pending = Pending.loads(self.web.sessions.current(request).pending)
        if pending is None:
            return self._refused(
                request,
                "This sign-in was not started in this browser, or it expired; start again.",
                400,
            )
        state = query.get("state", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            return self._refused(
                request,
                "The answer from the identity provider does not belong to this "
                "sign-in (state); start again.",
                400,
            )
        if query.get("error"):
            reason = query.get("error_description") or query["error"]
            return self._refused(
                request, f"The identity provider did not sign you in: {reason[:200]}", 401
            )
        code = query.get("code", "")
        if not code:
            return self._refused(request, "The identity provider sent no code; start again.", 400)
        redirect_uri = self._redirect_uri(request)

        sessions = self.web.sessions

        def finish() -> tuple[Session, Viewer]:
            tokens = oidc.exchange(code, pending.verifier, redirect_uri)
            id_token = tokens["id_token"]
            claims = oidc.verify_id_token(id_token, pending.nonce)
            identity = oidc.identify(claims, self.web.services.app.store)
            viewer = identity.viewer()
            # A brand-new session: new CSRF token, nothing carried over from before sign-in.
            return sessions.begin(viewer, "oidc", session_credential(identity, id_token)), viewer

        try:
            session, viewer = await run_in_threadpool(finish)
        except UserPhotoError as exc:
            return self._refused(request, exc.message, exc.status, exc.code)
        request.state.session = session
        request.state.viewer = viewer
        return self._signed_in(request, viewer, pending.next)

    async def sign_out(self, request: Request) -> Response:
        form = await read_form(request)
        self.web.sessions.check_csrf(request, form)
        before = self.web.sessions.current(request)
        await run_in_threadpool(self.web.sessions.end, before)  # on every node
        request.state.session = fresh()
        self.web.sessions.flash(request, "Signed out.")
        if before.method == "oidc" and self.oidc is not None:
            oidc = self.oidc
            back = oidc.config.post_logout_redirect_uri or self._site(request) + "/signin"
            try:
                url = await run_in_threadpool(
                    lambda: oidc.end_session_url(id_token_of(before.credential), back)
                )
            except UserPhotoError:
                url = None  # the provider is unreachable: our session has ended anyway
            if url:
                # A page, not a redirect: pages allow form posts only to this site (CSP
                # form-action), and a redirect after the sign-out form counts as one.
                return self.web.renderer.page(
                    request, "signed_out.html", {"title": "Signed out", "provider_url": url}
                )
        return self.web.renderer.redirect(request, "/signin")
