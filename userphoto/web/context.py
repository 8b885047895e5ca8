"""What every page handler shares: services, sessions, rendering, guards and body reading."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import Response

from ..api.common import Services
from ..errors import Forbidden, InvalidArgument, UserPhotoError, too_large
from ..imaging import MAX_JPEG_SCANS, ScanMarkers, too_many_scans
from ..model import Viewer, ViewerKind
from ..photos import Photos
from .render import Renderer
from .session import Sessions

FORM_LIMIT = 64 * 1024


class SignInNeeded(UserPhotoError):
    """A page needs a signed-in member or admin; pages answer with a redirect to /signin."""

    code = "signin_needed"
    status = 401


@dataclass
class Web:
    services: Services
    sessions: Sessions
    renderer: Renderer

    @classmethod
    def build(cls, services: Services) -> Web:
        sessions = Sessions(services)
        return cls(services, sessions, Renderer(sessions))

    @property
    def photos(self) -> Photos:
        """The photo lifecycle every page reads and writes through (audited)."""
        return self.services.app.photos

    # --- guards --------------------------------------------------------------------------------
    def member(self, request: Request) -> Viewer:
        viewer = self.sessions.viewer(request)
        if viewer.kind not in (ViewerKind.MEMBER, ViewerKind.ADMIN):
            raise SignInNeeded("Sign in first.")
        return viewer

    def admin(self, request: Request) -> Viewer:
        viewer = self.member(request)
        if not viewer.admin:
            raise Forbidden("This page is for administrators; sign in with an admin token.")
        return viewer

    def signin_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.renderer.redirect(request, f"/signin?next={quote(target, safe='')}")

    def refused(self, request: Request, exc: UserPhotoError) -> Response:
        """A page that may not be shown: sign in, or a plain error page."""
        if isinstance(exc, SignInNeeded):
            return self.signin_redirect(request)
        return self.renderer.page(
            request, "error.html", {"title": "Not available", "message": exc.message}, exc.status
        )


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind our forms send); first value of each name."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise InvalidArgument("The form is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise InvalidArgument("The form is not valid UTF-8.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


async def read_upload(request: Request, limit: int) -> bytes:
    """A raw upload body, held no further than one byte past `limit` ([limits] max_bytes).

    Over the limit (declared or as it arrives) it is refused with the words every surface
    uses, and a scan bomb as soon as its scans have arrived; the rest of a refused body is
    read and dropped (up to another `limit`), so the browser reads the answer, not a reset.
    """
    declared = request.headers.get("content-length", "")
    refusal: UserPhotoError | None = None
    if declared.isdigit() and int(declared) > limit:
        refusal = too_large(limit)
    chunks: list[bytes] = []  # joined once: no buffer regrown (and left behind) per request
    size, markers, checked = 0, ScanMarkers(), False
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if refusal is not None:
            if size > 2 * limit:
                break
            continue
        if size > limit:
            refusal, chunks = too_large(limit), []
            continue
        chunks.append(chunk)
        if markers.feed(chunk) > MAX_JPEG_SCANS and not checked:
            checked = True
            if (costly := too_many_scans(b"".join(chunks))) is not None:
                refusal, chunks = costly, []
    if refusal is not None:
        raise refusal
    return b"".join(chunks)


def local_path(path: str, default: str = "/me") -> str:
    """Only same-site paths are followed after a form or a sign-in (no open redirect)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path
