"""Everything that is not on the photo hot path: one Starlette app.

Photo routes (`/v1/users/`, `/v1.0/`, `/ews/`, `/avatar/`) are answered by the bare
`server.PhotoServer` in front of this app; every other request comes here. `userphoto serve`
(granian, RSGI, bridged to ASGI in `server.py`) delivers no lifespan events and no
websockets: initialise state lazily, not in startup hooks.

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

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import Forbidden, UserPhotoError
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
    """Alive: the process answers. (Says nothing about the store; see /readyz.)"""
    return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})


async def _ready(request: Request) -> Response:
    """Ready: the store answers and this process follows its change feed."""
    services = services_of(request)
    server = request.app.state.server
    try:
        latest = await asyncio.to_thread(services.app.store.generation)
    except Exception as exc:
        log.warning("readiness: the store is unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "store unreachable"}, 503)
    following = server is None or server.follower.is_alive()
    if not following:
        return JSONResponse({"status": "change feed not followed"}, 503)
    applied = server.follower.seq if server is not None else latest
    return JSONResponse(
        {"status": "ready", "change_seq": latest, "applied_seq": applied},
        headers={"cache-control": "no-store"},
    )


async def _metrics(request: Request) -> Response:
    """Prometheus text format; for admins, or clients in `[server] metrics_allow`."""
    server = request.app.state.server
    if server is None:
        return Response("No metrics here.\n", 404)
    client = request.client.host if request.client else ""
    if not server.metrics.allowed(client):
        viewer = viewer_of(request)
        if not viewer.admin:
            raise Forbidden("Metrics are for admins or [server] metrics_allow addresses.")
    return Response(
        server.metrics.render(),
        media_type="text/plain; version=0.0.4",
        headers={"cache-control": "no-store"},
    )


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
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.retry_after is not None:
        headers["retry-after"] = str(exc.retry_after)
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, exc.status, headers=headers
    )


async def _bug(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse({"error": {"code": "internal", "message": "Internal error."}}, 500)


def create_site(
    services: Services, extra: list[BaseRoute] | None = None, server: Any = None
) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/healthz", _health),
        Route("/readyz", _ready),
        Route("/metrics", _metrics),
        Route("/v1/whoami", _whoami),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        UserPhotoError: _user_error,
        Exception: _bug,
    }
    for name in SITE_MODULES:
        module = importlib.import_module(name)
        contribute: Callable[[Services], list[BaseRoute]] = module.routes
        routes.extend(contribute(services))
        if hasattr(module, "not_found"):  # a module may answer unknown paths (the web's 404)
            handlers[404] = module.not_found(services)
    routes.extend(extra or [])
    site = Starlette(routes=routes, exception_handlers=handlers)
    site.state.services = services
    site.state.server = server
    return site
