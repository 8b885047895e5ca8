"""Everything that is not on the photo hot path: one Starlette app.

Photo routes (`/v1/users/`, `/v1.0/`, `/ews/`, `/avatar/`) are answered by the bare
`server.PhotoServer` in front of this app; every other request comes here. `userphoto serve`
(`http.py`) delivers no lifespan events and no websockets: initialise state lazily, not in
startup hooks.

How to add routes (web pages, the admin API, the troubleshooter):
1. Write a module exposing `def routes(services: Services) -> list[starlette.routing.BaseRoute]`
   (e.g. `userphoto/web/__init__.py` or `userphoto/api/admin.py`).
2. Add its dotted name to `SITE_MODULES` below (a one-line edit).
3. In a handler, `services_of(request)` gives the App / store / Photos service, and
   `viewer_of(request)` the authenticated `Viewer` (member, admin, partner or anonymous; a bad
   bearer token raises `Unauthorized`, which the handler below turns into a JSON 401). A
   cookie-based sign-in can call `services_of(request).auth.from_token(token)`.
Any `UserPhotoError` raised by a handler becomes `{"error": {"code", "message"}}` with its
status; other exceptions become a JSON 500 without details (and are logged).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import UserPhotoError
from ..model import Viewer
from .common import Services

log = logging.getLogger("userphoto.api")

# Modules contributing routes to the site, each with `routes(services) -> list[BaseRoute]`.
SITE_MODULES: list[str] = ["userphoto.api.admin", "userphoto.web", "userphoto.api.openapi"]


def services_of(request: Request) -> Services:
    return request.app.state.services


def viewer_of(request: Request) -> Viewer:
    """The request's viewer from its `Authorization` header (anonymous when there is none)."""
    return services_of(request).auth.from_header(request.headers.get("authorization"))


async def _health(request: Request) -> Response:
    services = services_of(request)
    return JSONResponse({"status": "ok", "generation": services.app.store.generation()})


async def _whoami(request: Request) -> Response:
    viewer = viewer_of(request)
    return JSONResponse(
        {
            "kind": viewer.kind.value,
            "address": viewer.address,
            "user_id": viewer.user_id,
            "partner": viewer.partner,
        },
        headers={"cache-control": "no-store"},
    )


async def _user_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserPhotoError)
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, exc.status, headers=headers
    )


async def _bug(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse({"error": {"code": "internal", "message": "Internal error."}}, 500)


def create_site(services: Services, extra: list[BaseRoute] | None = None) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/healthz", _health),
        Route("/v1/whoami", _whoami),
    ]
    for name in SITE_MODULES:
        contribute: Callable[[Services], list[BaseRoute]] = importlib.import_module(name).routes
        routes.extend(contribute(services))
    routes.extend(extra or [])
    site = Starlette(
        routes=routes,
        exception_handlers={UserPhotoError: _user_error, Exception: _bug},
    )
    site.state.services = services
    return site
