"""What a site handler reads of its request: the services, the viewer, the client, the id.

Its own module, below `site.py`: the route modules the site imports (`admin`, `web`) read
these without importing the site back.
"""

from __future__ import annotations

from starlette.requests import Request

from ..errors import UserPhotoError
from ..model import Viewer
from .common import Services
from .proxies import CLIENT


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
