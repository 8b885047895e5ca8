"""The site's 404: a page like every other for browsers, the API's JSON error for the rest.

Registered by `api/site.py` for every path no route answers (photo paths are answered by
their own surfaces before they reach the site).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .context import Web

PATH_SHOWN = 120  # characters of the unknown path echoed back (escaped by the template)


class NotFoundPage:
    def __init__(self, web: Web):
        self.web = web

    async def handle(self, request: Request, _exc: Exception) -> Response:
        path = request.url.path
        wants_page = "text/html" in request.headers.get("accept", "") and not path.startswith("/v1")
        if not wants_page:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "No such path."}},
                404,
                headers={"cache-control": "no-store"},
            )
        shown = path if len(path) <= PATH_SHOWN else path[:PATH_SHOWN] + "…"
        return self.web.renderer.page(
            request, "notfound.html", {"title": "Page not found", "path_shown": shown}, 404
        )
