"""The admin API: the troubleshooter's verdicts over HTTP (for the web page and scripts).

    GET /v1/admin/diagnose?target=ADDRESS[&viewer=ADDRESS|&external=DOMAIN|&anonymous=1]
                          [&client=legacy|hd|web][&size=N|HRnxn]
        (a caller's credential to check goes in the `X-Diagnose-Token` header, never in the
        URL, where access logs and browser history would keep it)
    GET /v1/admin/doctor

Admins only: anyone else gets 401 (no credentials) or 403.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import diagnose as troubleshooter
from ..auth import Unauthorized
from ..directory import status as sync_status
from ..directory.probe import live_directory_check
from ..doctor import doctor
from ..errors import Forbidden, InvalidArgument
from ..model import ClientProfile, parse_size
from .common import Services
from .request import services_of, viewer_of

_NO_STORE = {"cache-control": "no-store"}


def _require_admin(request: Request) -> None:
    viewer = viewer_of(request)
    if viewer.kind.value == "anonymous":
        raise Unauthorized("The admin API needs an admin bearer token.")
    if not viewer.admin:
        raise Forbidden("The admin API is for admins only.")


async def _diagnose(request: Request) -> Response:
    _require_admin(request)
    q = request.query_params
    target = q.get("target", "").strip()
    if not target:
        raise InvalidArgument("Give ?target=ADDRESS (the user whose photo to explain).")
    if sum(bool(q.get(k)) for k in ("viewer", "external", "anonymous")) > 1:
        raise InvalidArgument("Give at most one of viewer, external, anonymous.")
    anonymous = q.get("anonymous", "").lower()
    if anonymous not in ("", "1", "true", "yes", "0", "false", "no"):
        raise InvalidArgument("anonymous must be 1 or 0 (true/false, yes/no).")
    client = q.get("client", "hd")
    if client not in {c.value for c in ClientProfile}:
        raise InvalidArgument("client must be one of legacy, hd, web.")
    try:
        size = parse_size(q["size"]) if q.get("size") else None
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    app = services_of(request).app
    verdict = await run_in_threadpool(
        troubleshooter.diagnose,
        app,
        target,
        viewer=q.get("viewer") or None,
        external=q.get("external") or None,
        anonymous=anonymous in ("1", "true", "yes"),
        token=request.headers.get("x-diagnose-token") or None,
        client=client,
        size=size,
        directory_check=live_directory_check(app.settings),
    )
    return JSONResponse(verdict.to_dict(), headers=_NO_STORE)


async def _doctor(request: Request) -> Response:
    _require_admin(request)
    app = services_of(request).app
    runs = await run_in_threadpool(sync_status.load, app.store)
    report = await run_in_threadpool(doctor, app, sync_runs=runs)
    return JSONResponse(report.to_dict(), headers=_NO_STORE)


def routes(services: Services) -> list[BaseRoute]:
    return [
        Route("/v1/admin/diagnose", _diagnose, methods=["GET"]),
        Route("/v1/admin/doctor", _doctor, methods=["GET"]),
    ]
