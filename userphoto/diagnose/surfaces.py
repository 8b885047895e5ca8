"""What each HTTP surface answers this viewer: the native API, Graph, EWS and /avatar/.

Pure: each surface's answer comes from `answers`, the very functions the handlers run; this
module only spells the request and the answer the way a client would see them.
`tests/diagnose/test_diagnose_matrix.py` holds these predictions to the real answers of a real
server.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import answers
from ..answers import Kind
from ..model import (
    AVATAR_DEFAULT_SIZE,
    EWS_DEFAULT_SIZE,
    HD_SIZES,
    ClientProfile,
    DirectoryThumbnail,
    User,
    Viewer,
)
from ..resolve import Source


@dataclass(frozen=True)
class Answer:
    surface: str  # native | graph | ews | avatar
    request: str  # the request, as a client would send it (the viewer's token aside)
    status: int  # 200, 302, 401, 403 or 404
    source: str | None = None  # X-Photo-Source of a 200 or 302: hd, directory, url, default
    width: int | None = None  # of the image served (200)
    height: int | None = None
    location: str | None = None  # of a 302
    picture: str | None = None  # a generated default: initials or mp

    @property
    def text(self) -> str:
        if self.status == 302:
            return f"302 to {self.location}"
        if self.status != 200:
            return {401: "401 (credentials refused)", 403: "403 (not visible)"}.get(
                self.status, f"{self.status} (no photo)"
            )
        if self.source == "default":
            return f"200, the generated default ({self.picture}, {self.width}×{self.height})"
        return f"200, the {self.source} photo at {self.width}×{self.height}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


def predict(
    user: User | None,
    viewer: Viewer,
    client: ClientProfile,
    size: int | None,
    *,
    photo_sizes: tuple[int, ...] = (),
    directory: DirectoryThumbnail | None = None,
    refused: bool = False,
    address: str = "",
) -> list[Answer]:
    """The answer of every surface, as the server gives it for this viewer and request."""
    address = user.address if user else address
    native_q = f"client={client.value}" + (f"&size={size}" if size else "")
    graph_path = f"photos/{size}x{size}/$value" if size in HD_SIZES else "photo/$value"
    ews_size = size or EWS_DEFAULT_SIZE
    avatar_size = size or AVATAR_DEFAULT_SIZE
    requests = {
        "native": f"GET /v1/users/{address}/photo?{native_q}",
        "graph": f"GET /v1.0/users/{address}/{graph_path}",
        "ews": f"GET /ews/Exchange.asmx/s/GetUserPhoto?email={address}"
        f"&size=HR{ews_size}x{ews_size}",
        "avatar": f"GET /avatar/MD5({address})?s={avatar_size}",
    }
    if refused:
        return [Answer(name, req, 401) for name, req in requests.items()]
    facts: dict[str, Any] = {"photo_sizes": photo_sizes, "directory": directory}
    graph_size = size if size in HD_SIZES else None
    plans = {
        "native": answers.native(user, viewer, client, size, **facts)[1],
        "graph": answers.graph(user, viewer, graph_size, **facts)[1],
        "ews": answers.ews(user, viewer, ews_size, **facts)[1],
        "avatar": answers.avatar(user, viewer, avatar_size, **facts)[1],
    }
    out: list[Answer] = []
    for name, plan in plans.items():
        if plan.kind is Kind.REDIRECT:
            source = plan.source.value if plan.source else None
            out.append(Answer(name, requests[name], 302, source, location=plan.url))
        elif plan.kind is not Kind.IMAGE:
            out.append(Answer(name, requests[name], plan.status))
        elif plan.source is Source.DIRECTORY:
            assert directory is not None
            out.append(
                Answer(name, requests[name], 200, "directory", directory.width, directory.height)
            )
        else:
            assert plan.source is not None and plan.size is not None
            side = plan.size
            out.append(
                Answer(
                    name, requests[name], 200, plan.source.value, side, side, picture=plan.picture
                )
            )
    return out
