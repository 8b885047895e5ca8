"""EWS `GetUserPhoto`, REST form: `GET /ews/Exchange.asmx/s/GetUserPhoto?email=…&size=HR240x240`.

As Exchange answers it: size codes in any case; a size that was never rendered → the largest
available below it; `HR48x48` → the directory thumbnail when one exists (internal viewers);
no HD photo → the directory thumbnail for internal viewers; 404 when nothing; ETag and
`If-None-Match` → 304. The size defaults to HR96x96 when omitted. Bodies of errors are plain
text; external viewers get one identical 404 for unknown, hidden and photo-less users.
"""

from __future__ import annotations

from .. import answers
from ..answers import Kind
from ..errors import InvalidArgument, UserPhotoError
from ..model import EWS_DEFAULT_SIZE, is_address
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
        _res, plan = answers.ews(
            target.user if target else None,
            viewer,
            size,
            photo_sizes=target.sizes if target else (),
            directory=target.directory if target else None,
        )
        if target is None:
            return plain_error(404, _NOTHING, cacheable=True)
        uid = target.user.id
        if plan.kind is Kind.REFUSED:
            return plain_error(403, plan.reason.encode() + b"\n", target=uid, cacheable=True)
        if plan.kind is Kind.IMAGE:
            data = self.s.lookup.image(target, plan)
            return image_answer(data, viewer, plan.source or "", target=uid)
        if plan.kind is Kind.REDIRECT:
            assert plan.url is not None
            return redirect_answer(plan.url, viewer, target=uid)
        return plain_error(404, _NOTHING, target=uid, cacheable=True)
