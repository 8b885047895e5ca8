"""`diagnose` predicts exactly what each surface answers: the viewer × picture option ×
visibility × surface matrix, each prediction of `userphoto diagnose --json` held to the real
HTTP answer of a real `userphoto serve` over a socket (native API, Graph, EWS, /avatar/ with
its default d=), for the size a client shows, a large view and a legacy client.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.support.server import addr, put_directory, start_server, stop_server
from userphoto import auth
from userphoto.api import default_picture
from userphoto.app import App
from userphoto.cli import cli
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import Picture, User, Visibility

PARTNER = "partner.example"
# What each target has: the picture option and what is stored for it.
OPTIONS: dict[str, dict] = {
    "hd": {"picture": Picture.PHOTO, "photo": 700},
    "small": {"picture": Picture.PHOTO, "photo": 300},  # largest rendition 240
    "dironly": {"picture": Picture.PHOTO, "directory": True},
    "nothing": {"picture": Picture.PHOTO},
    "url": {"picture": Picture.URL, "picture_url": "https://photos.example/p.jpg"},
    "default": {"picture": Picture.DEFAULT, "photo": 700},
    "hidden": {"picture": Picture.HIDDEN, "photo": 700},
}
VIEWERS = ("member", "self", "admin", "partner", "anonymous")
# (client, size) of the request: what the client shows, a large view, a legacy client.
ASKS = (("hd", None), ("hd", 648), ("legacy", 240))


@dataclass
class Matrix:
    base: str
    home: Path
    tokens: dict[str, str]  # local part or "member"/"admin"/"partner" -> bearer token


def local(option: str, visibility: Visibility) -> str:
    return f"{option}-{visibility.value}"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    home = tmp_path_factory.mktemp("matrix-home")
    app = App(Settings.load(home))
    app.settings.write_default()
    tokens: dict[str, str] = {}
    try:
        for option, spec in OPTIONS.items():
            for visibility in Visibility:
                name = local(option, visibility)
                user = User(
                    id=f"id-{name}",
                    address=addr(name),
                    display_name=f"{option.title()} {visibility.value.title()}",
                    picture=spec["picture"],
                    picture_url=spec.get("picture_url"),
                    visibility=visibility,
                )
                app.store.add_user(user)
                if spec.get("photo"):
                    side = spec["photo"]
                    app.photos.set(user.id, portrait(len(name), side, side))
                if spec.get("directory"):
                    put_directory(app, user.id)
                tokens[name] = auth.create_token(app.store, user.address)[1]
        app.store.add_user(User(id="id-watcher", address=addr("watcher"), display_name="W"))
        tokens["member"] = auth.create_token(app.store, addr("watcher"))[1]
        tokens["admin"] = auth.create_token(app.store, "root@contoso.test", admin=True)[1]
        _p, secret = auth.add_partner(app.store, PARTNER)
        assert secret is not None
        claims = {"iss": PARTNER, "sub": f"pia@{PARTNER}", "aud": "contoso.test"}
        tokens["partner"] = jwt.encode(
            {**claims, "exp": int(time.time() + 3600)}, secret, algorithm="HS256"
        )
    finally:
        app.close()
    proc, base = start_server(home)
    try:
        yield Matrix(base, home, tokens)
    finally:
        stop_server(proc)


def token_for(m: Matrix, viewer: str, target: str) -> str | None:
    if viewer == "anonymous":
        return None
    return m.tokens[target if viewer == "self" else viewer]


def diagnose_json(
    m: Matrix, target: str, token: str | None, size: int | None, client: str = "hd"
) -> dict:
    args = ["--home", str(m.home), "diagnose", addr(target), "--json", "--client", client]
    args += ["--token", token] if token else ["--anonymous"]
    args += ["--size", str(size)] if size else []
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    verdict = json.loads(result.output)
    assert result.exit_code == (1 if verdict["errors"] else 0), result.output
    return verdict


def requests_for(target: str, size: int | None, client: str) -> dict[str, str]:
    address = addr(target)
    md5 = hashlib.md5(address.encode()).hexdigest()
    graph = f"photos/{size}x{size}/$value" if size else "photo/$value"
    ews = size or 96
    return {
        "native": f"/v1/users/{address}/photo?client={client}" + (f"&size={size}" if size else ""),
        "graph": f"/v1.0/users/{address}/{graph}",
        "ews": f"/ews/Exchange.asmx/s/GetUserPhoto?email={address}&size=HR{ews}x{ews}",
        "avatar": f"/avatar/{md5}?s={size or 80}",
    }


def observed(r: httpx.Response, avatar_size: int) -> dict:
    """What the response really is, in the prediction's terms."""
    got: dict = {"status": r.status_code}
    if r.status_code == 302:
        got |= {"source": r.headers.get("x-photo-source"), "location": r.headers["location"]}
    elif r.status_code == 200:
        image = Image.open(io.BytesIO(r.content))
        got |= {
            "source": r.headers.get("x-photo-source"),
            "width": image.width,
            "height": image.height,
        }
        if got["source"] == "default":
            mp = r.content == default_picture.silhouette(image.width)
            got["picture"] = "mp" if mp else "initials"
    return got


def predicted(answer: dict) -> dict:
    keys = {
        200: ("status", "source", "width", "height", "picture"),
        302: ("status", "source", "location"),
    }.get(answer["status"], ("status",))
    return {k: answer[k] for k in keys if k != "picture" or answer["source"] == "default"}


@pytest.mark.parametrize("ask", ASKS, ids=lambda a: f"{a[0]}-{a[1] or 'default'}")
@pytest.mark.parametrize("viewer", VIEWERS)
def test_diagnose_predicts_every_surface(
    matrix: Matrix, viewer: str, ask: tuple[str, int | None]
) -> None:
    client, size = ask
    mismatches: list[str] = []
    with httpx.Client(base_url=matrix.base, timeout=10, follow_redirects=False) as http:
        for option in OPTIONS:
            for visibility in Visibility:
                target = local(option, visibility)
                token = token_for(matrix, viewer, target)
                verdict = diagnose_json(matrix, target, token, size, client)
                answers = {a["surface"]: a for a in verdict["surfaces"]}
                assert set(answers) == {"native", "graph", "ews", "avatar"}
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                for surface, path in requests_for(target, size, client).items():
                    real = observed(http.get(path, headers=headers), size or 80)
                    guess = predicted(answers[surface])
                    if real != guess:
                        mismatches.append(f"{target} {surface}: real {real} ≠ said {guess}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("viewer", ["anonymous", "partner"])
def test_outsiders_of_a_default_picture_get_404_and_mp(matrix: Matrix, viewer: str) -> None:
    """The issue's case: no "generated initials" for outsiders; 404 natively, mp on /avatar/."""
    target = local("default", Visibility.EVERYONE)
    verdict = diagnose_json(matrix, target, token_for(matrix, viewer, target), None)
    answers = {a["surface"]: a for a in verdict["surfaces"]}
    assert answers["native"]["status"] == 404
    assert answers["avatar"]["picture"] == "mp"
    assert "initials" not in verdict["sees"]["text"]
    assert "404" in verdict["sees"]["text"] and "mp" in verdict["sees"]["text"]
