"""The web pages: sign-in, my photo (upload, crop, preview, save), the admin directory view
and the troubleshooter. Served by the site (`api/site.py`, listed in `SITE_MODULES`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from ..api.common import Services
from .admin import AdminPages
from .context import Web
from .image import PhotoImages
from .notfound import NotFoundPage
from .photo import PhotoPages
from .render import STATIC
from .signin import SignInPages
from .troubleshoot import TroubleshootPage


def routes(services: Services) -> list[BaseRoute]:
    web = Web.build(services)
    return [
        *SignInPages(web).routes(),
        *PhotoPages(web).routes(),
        *PhotoImages(web).routes(),
        *AdminPages(web).routes(),
        *TroubleshootPage(web).routes(),
        Mount("/web/static", StaticFiles(directory=STATIC), name="static"),
    ]


def not_found(services: Services) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The site's 404 handler (see `api/site.py`): a styled page for browsers."""
    return NotFoundPage(Web.build(services)).handle
