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
   cookie-based sign-in can call `services_of(request).auth.from_token(token)` (in a thread:
   the first check of a token reads the store).
Credentials never get checked on the event loop: before any handler runs, `Credentials`
resolves the `Authorization` header from the authenticator's memory, or, when that needs the
store or a signature check, in a worker thread; `viewer_of` then reads the result. Session
cookies do the same through `Services.prepare` (see `web/session.py`).
Any `UserPhotoError` raised by a handler becomes `{"error": {"code", "message"}}` with its
status; other exceptions become a JSON 500 without details (and are logged).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import Forbidden, UserPhotoError
from ..model import Viewer
from .common import Services
from .proxies import CLIENT, ProxyHeaders, TrustedProxies

log = logging.getLogger("userphoto.api")
_NO_STORE = {"cache-control": "no-store"}

# Modules contributing routes to the site, each with `routes(services) -> list[BaseRoute]`.
SITE_MODULES: list[str] = ["userphoto.api.admin", "userphoto.web", "userphoto.api.openapi"]


def services_of(request: Request) -> Services:
    return request.app.state.services


VIEWER = "userphoto.header_viewer"  # scope key: the header's Viewer, or the error it raised
REQUEST_ID_KEY = "userphoto.request_id"  # scope key: the request's id (api/logs.py)


def client_of(request: Request) -> str:
    """The client's address as believed (`[server] trusted_proxies`, api/proxies.py): for
    anything that records who asked, such as an audit entry."""
    return str(request.scope.get(CLIENT) or (request.client.host if request.client else ""))


def request_id_of(request: Request) -> str | None:
    return request.scope.get(REQUEST_ID_KEY)


def viewer_of(request: Request) -> Viewer:
    """The request's viewer from its `Authorization` header (anonymous when there is none)."""
    checked = request.scope.get(VIEWER)
    if isinstance(checked, Viewer):
        return checked
    if isinstance(checked, UserPhotoError):
        raise checked
    return services_of(request).auth.from_header(request.headers.get("authorization"))


class Credentials:
    """Checks a site request's credentials before its handler, off the event loop when the
    check needs the store (a token seen for the first time) or a signature (a JWT)."""

    def __init__(self, app: ASGIApp, services: Services):
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.prepare(scope)
        await self.app(scope, receive, send)

    async def prepare(self, scope: Scope) -> None:
        request = Request(scope)
        header = request.headers.get("authorization")
        jobs: list[Callable[[], None]] = []
        try:
            viewer = self.services.auth.peek(header)
        except UserPhotoError as exc:  # refused from memory: one hash, no store read
            scope[VIEWER] = exc
        else:
            if viewer is not None:
                scope[VIEWER] = viewer
            else:
                jobs.append(lambda: _check_header(self.services, scope, header))
        for prepare in self.services.prepare:
            job = prepare(request)
            if job is not None:
                jobs.append(job)
        if jobs:
            await asyncio.to_thread(_run_all, jobs)


def _check_header(services: Services, scope: Scope, header: str | None) -> None:
    try:
        scope[VIEWER] = services.auth.from_header(header)
    except UserPhotoError as exc:
        scope[VIEWER] = exc


def _run_all(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        try:
            job()
        except Exception:
            # A fault, not a verdict (the store is down, say): the handler meets it again
            # inside Starlette's error handling, which answers it properly.
            log.debug("credential check left to the handler", exc_info=True)


async def _health(request: Request) -> Response:
    """Alive: the process answers. (Says nothing about the store; see /readyz.)"""
    return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})


READY_STALE = 5.0  # s: the change feed is read at least every second when healthy


async def _ready(request: Request) -> Response:
    """Ready: the store answers now, the image workers have started, and this process's
    caches are warm — its change-feed follower runs, has read the feed successfully since
    start and has applied everything it read within the last `READY_STALE` seconds (so no
    cached answer is staler than that)."""
    services = services_of(request)
    server = request.app.state.server
    try:
        latest = await asyncio.to_thread(services.app.store.latest_seq)
    except Exception as exc:
        log.warning("readiness: the store is unreachable: %s", type(exc).__name__)
        return _not_ready("store unreachable")
    if server is None:
        return JSONResponse({"status": "ready", "change_seq": latest}, headers=_NO_STORE)
    follower = server.follower
    if not follower.is_alive():
        return _not_ready("change feed not followed")
    if server.workers_starting.is_alive():
        return _not_ready("warming up: the image workers are starting")
    synced = follower.caught_up_at
    if synced is None:
        return _not_ready("warming up: the change feed has not been read yet")
    behind = time.monotonic() - synced
    if behind > READY_STALE:
        return _not_ready(f"change feed not read for {behind:.0f} s")
    body: dict[str, object] = {"status": "ready", "change_seq": latest, "applied_seq": follower.seq}
    if problems := services.app.pool.problems:  # ready, but the image limits are not all set
        body["degraded"] = problems
    return JSONResponse(body, headers=_NO_STORE)


def _not_ready(why: str) -> Response:
    return JSONResponse({"status": why}, 503, headers=_NO_STORE)


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
        await asyncio.to_thread(server.metrics.render),  # it reads the store's sync status
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
) -> ASGIApp:
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
    # Behind a trusted proxy the site sees the public scheme, host and client (the server's
    # bridge has done so already for the requests it passes on; this covers plain ASGI).
    proxies = TrustedProxies.from_settings(services.app.settings)
    return ProxyHeaders(Credentials(site, services), proxies)
