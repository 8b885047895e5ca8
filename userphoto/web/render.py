"""Rendering pages: the Jinja2 environment, the shared page context and response headers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..model import Viewer
from .session import Sessions

HERE = Path(__file__).parent
STATIC = HERE / "static"

# Pages load nothing from elsewhere: our own CSS and JS only. Photos may come from a web
# address a user chose (the `url` picture option), hence https: for images.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' blob: data: https:; style-src 'self'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def ago(value: datetime | None) -> str:
    """'3 min ago' style, for sync times."""
    if value is None:
        return "never"
    seconds = (datetime.now(UTC) - value.astimezone(UTC)).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return "just now"


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _static_version() -> str:
    """Changes whenever a static file does, so browsers never keep an old script."""
    newest = max((p.stat().st_mtime_ns for p in STATIC.rglob("*") if p.is_file()), default=0)
    return format(newest % (36**6), "x")


class Renderer:
    def __init__(self, sessions: Sessions):
        self.sessions = sessions
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["ago"] = ago
        self.env.filters["when"] = when
        self.env.globals["static_version"] = _static_version()

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        """A full page; consumes the session's flash message and refreshes the cookie."""
        session = self.sessions.current(request)
        viewer: Viewer = self.sessions.viewer(request)
        ctx = {
            "request": request,
            "viewer": viewer,
            "csrf": session.csrf,
            "flash": session.flash,
            "flash_kind": session.flash_kind or "ok",
            "path": request.url.path,
            **(context or {}),
        }
        html = self.env.get_template(template).render(ctx)
        response = HTMLResponse(html, status, headers=SECURITY_HEADERS)
        self.sessions.store(response, request, replace(session, flash="", flash_kind=""))
        return response

    def redirect(self, request: Request, url: str) -> Response:
        """303 after a form post, keeping the session (and any flash) in the cookie."""
        response = RedirectResponse(url, 303, headers={"cache-control": "no-store"})
        self.sessions.store(response, request, self.sessions.current(request))
        return response
