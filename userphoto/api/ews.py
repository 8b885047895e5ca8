"""EWS `GetUserPhoto`, REST form: `GET /ews/Exchange.asmx/s/GetUserPhoto?email=…&size=HR240x240`.

As Exchange answers it: size codes in any case; a size that was never rendered → the largest
available below it; `HR48x48` → the directory thumbnail when one exists (internal viewers);
no HD photo → the directory thumbnail for internal viewers; 404 when nothing; ETag and
`If-None-Match` → 304. The size defaults to HR96x96 when omitted. Bodies of errors are plain
text; external viewers get one identical 404 for unknown, hidden and photo-less users.
"""

from __future__ import annotations

from ..errors import InvalidArgument, UserPhotoError
from ..model import EWS_DEFAULT_SIZE, ClientProfile, is_address
from ..resolve import Source
from .cache import Answer, image_answer, plain_error, redirect_answer
from .common import Req, Services, size_param

PREFIX = "/ews/"
PATH = "/ews/exchange.asmx/s/getuserphoto"
_NOTHING = b"No photo.\n"


class EwsApi:
    route = "/ews/Exchange.asmx/s/GetUserPhoto"  # for the access log and metrics

    def __init__(self, services: Services):
        self.s = services

    def error(self, exc: UserPhotoError) -> Answer:
        extra = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else []
        return plain_error(exc.status, exc.message.encode() + b"\n", extra=extra)

    def handle(self, req: Req) -> Answer:
        if req.path.lower().rstrip("/") != PATH:
            return plain_error(404, b"Unknown EWS path; use /ews/Exchange.asmx/s/GetUserPhoto.\n")
        if req.method not in ("GET", "HEAD"):
            return plain_error(405, b"Only GET.\n", extra=[(b"allow", b"GET, HEAD")])
        email = req.query.get("email", "").strip()
        if not email:
            raise InvalidArgument("The email parameter is required.")
        if not is_address(email) or len(email) > 320:
            raise InvalidArgument(f"{email[:80]!r} is not a valid address.")
        size = size_param(req.query.get("size")) or EWS_DEFAULT_SIZE
        viewer = req.viewer
        target = self.s.lookup.target(email, size)
        if target is None:
            return plain_error(404, _NOTHING, cacheable=True)
        uid = target.user.id
        res = self.s.lookup.resolve(
            target, viewer, ClientProfile.HD, size, prefer_directory=size == 48
        )
        if res.source is Source.NONE and viewer.internal:
            return plain_error(
                403, res.trace[0].reason.encode() + b"\n", target=uid, cacheable=True
            )
        if res.source is Source.HD:
            assert res.size is not None
            data = self.s.lookup.rendition(target, res.size)
            if data is None:
                raise UserPhotoError("The photo changed while it was read; retry.", status=409)
            return image_answer(data, viewer, "hd", target=uid)
        if res.source is Source.DIRECTORY:
            assert target.directory is not None and target.directory.jpeg is not None
            return image_answer(target.directory.jpeg, viewer, "directory", target=uid)
        if res.source is Source.URL:
            assert res.url is not None
            return redirect_answer(res.url, viewer, target=uid)
        return plain_error(404, _NOTHING, target=uid, cacheable=True)
