"""What each HTTP surface answers this viewer: the native API, Graph, EWS and /avatar/.

Pure: the same `resolve` rule each surface runs, with each surface's own parameters and its
own answer for what resolve leaves open (outsiders never get the generated default from the
native API, Graph and EWS answer 404 without a photo, /avatar/ draws its `d=` default).
`tests/test_diagnose_matrix.py` holds these predictions to the real answers of a real server.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..model import (
    AVATAR_DEFAULT_SIZE,
    EWS_DEFAULT_SIZE,
    GENERATED_SIZE,
    HD_SIZES,
    OUTSIDE_GENERATED_MAX,
    ClientProfile,
    DirectoryThumbnail,
    User,
    Viewer,
)
from ..resolve import Resolution, Source, allowed_sizes, resolve


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
    kw: dict[str, Any] = {"photo_sizes": photo_sizes, "directory": directory}

    def image(name: str, res: Resolution, width: int, height: int | None = None) -> Answer:
        return Answer(name, requests[name], 200, res.source.value, width, height or width)

    def picture(res: Resolution, hd_size: int) -> Answer | None:
        """HD, directory and web-address answers, the same on every surface."""
        if res.source is Source.HD:
            return image(name, res, hd_size)
        if res.source is Source.DIRECTORY:
            assert directory is not None
            return image(name, res, directory.width, directory.height)
        if res.source is Source.URL:
            return Answer(name, requests[name], 302, "url", location=res.url)
        return None

    out: list[Answer] = []
    # Native API.
    name = "native"
    if user is None:
        out.append(Answer(name, requests[name], 404))
    else:
        res = resolve(user, viewer, client, size, **kw)
        if res.source is Source.NONE:
            out.append(Answer(name, requests[name], 403 if viewer.internal else 404))
        elif res.source is Source.DEFAULT:
            if viewer.internal:
                side = size or GENERATED_SIZE
                out.append(
                    Answer(name, requests[name], 200, "default", side, side, picture="initials")
                )
            else:
                out.append(Answer(name, requests[name], 404))
        else:
            out.append(picture(res, res.size or 0) or Answer(name, requests[name], 404))
    # Graph (always an HD client).
    name = "graph"
    if user is None:
        out.append(Answer(name, requests[name], 404))
    else:
        res = resolve(user, viewer, ClientProfile.HD, size, **kw)
        graph_size = size if size in HD_SIZES else None
        if not res.photo:
            hidden = res.source is Source.NONE and viewer.internal
            out.append(Answer(name, requests[name], 403 if hidden else 404))
        elif res.source is Source.DIRECTORY:
            assert directory is not None
            square = directory.width == directory.height
            fits = graph_size is None or (square and graph_size == directory.width)
            out.append(
                image(name, res, directory.width, directory.height)
                if fits
                else Answer(name, requests[name], 404)
            )
        elif res.source is Source.HD:
            available = allowed_sizes(photo_sizes, res.cap)
            if graph_size is not None and graph_size not in available:
                out.append(Answer(name, requests[name], 404))
            else:
                out.append(image(name, res, graph_size or res.size or 0))
        else:
            out.append(picture(res, 0) or Answer(name, requests[name], 404))
    # EWS GetUserPhoto.
    name = "ews"
    if user is None:
        out.append(Answer(name, requests[name], 404))
    else:
        res = resolve(
            user, viewer, ClientProfile.HD, ews_size, prefer_directory=ews_size == 48, **kw
        )
        found = picture(res, res.size or 0)
        hidden = res.source is Source.NONE and viewer.internal
        out.append(found or Answer(name, requests[name], 403 if hidden else 404))
    # /avatar/ (no d=: initials for members when the user chose the default, else mp).
    name = "avatar"
    found = None
    initials = False
    if user is not None:
        res = resolve(user, viewer, ClientProfile.WEB, None, **kw)
        master = max(photo_sizes) if photo_sizes else 0
        found = picture(res, min(avatar_size, master))  # never upscaled: the master at most
        initials = viewer.internal and res.source is Source.DEFAULT
    drawn = avatar_size if viewer.internal else min(avatar_size, OUTSIDE_GENERATED_MAX)
    out.append(
        found
        or Answer(
            name,
            requests[name],
            200,
            "default",
            drawn,
            drawn,
            picture="initials" if initials else "mp",
        )
    )
    return out
