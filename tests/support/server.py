"""A real `userphoto serve` on a loopback port, seeded with users covering every photo case.

`served` (session-scoped) starts the server once in a subprocess; tests talk HTTP to it over a
real socket with httpx. Tests that change data use their own users (or `fresh_server`), and
wait for the change with `Served.wait_for`.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from PIL import Image

from tests.support.net import free_port
from tests.support.postgres import STORES, pg_database
from userphoto import auth, imaging
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import (
    Account,
    DirectoryThumbnail,
    Picture,
    User,
    Visibility,
)

BIN = Path(sys.executable).parent
DOMAIN = "contoso.test"


def addr(local: str) -> str:
    return f"{local}@{DOMAIN}"


def directory_jpeg(width: int = 80, height: int = 100, colour: tuple = (30, 120, 60)) -> bytes:
    """A directory thumbnail as sync stores it (re-encoded, not necessarily square)."""
    import io

    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "JPEG")
    jpeg, _w, _h = imaging.reencode_directory_photo(buf.getvalue())
    return jpeg


def put_directory(app: App, user_id: str, width: int = 80, height: int = 100) -> bytes:
    jpeg = directory_jpeg(width, height)
    app.store.put_directory_thumbnail(
        DirectoryThumbnail(
            user_id=user_id,
            jpeg=jpeg,
            raw_hash="raw-" + user_id,
            raw_size=len(jpeg),
            width=width,
            height=height,
            problem=None,
            seen=datetime.now(UTC),
        )
    )
    return jpeg


# (local part, display name, overrides, photo side or None, directory thumbnail?)
PEOPLE: list[tuple[str, str, dict, int | None, bool]] = [
    ("ada", "Ada Lovelace", {"visibility": Visibility.EVERYONE}, 900, False),
    ("bob", "Bob Org", {}, 700, False),
    ("cy", "Cy Directory", {"visibility": Visibility.EVERYONE}, None, True),
    (
        "dee",
        "Dee Hidden",
        {"picture": Picture.HIDDEN, "visibility": Visibility.EVERYONE},
        700,
        False,
    ),
    ("eve", "Eve Small", {}, 300, False),
    (
        "fay",
        "Fay Url",
        {
            "picture": Picture.URL,
            "picture_url": "https://photos.example/fay.jpg",
            "visibility": Visibility.EVERYONE,
        },
        None,
        False,
    ),
    ("gus", "Gus Removed", {}, 700, True),  # photo removed afterwards: removal record
    ("hal", "Hal Legacy", {"account": Account.SD_ONLY}, 700, False),
    (
        "ivy",
        "Ivy Default",
        {"picture": Picture.DEFAULT, "visibility": Visibility.EVERYONE},
        None,
        False,
    ),
    ("jon", "Jon Disabled", {"account": Account.DISABLED}, None, True),
    ("kim", "Kim Writer", {"visibility": Visibility.EVERYONE}, None, False),
    ("lee", "Lee Nobody", {"visibility": Visibility.NOBODY}, 700, False),
    ("max", "Max Public Nophoto", {"visibility": Visibility.EVERYONE}, None, False),
    ("ned", "Ned Both", {"visibility": Visibility.EVERYONE}, 700, True),
    # changed by tests (nobody else reads them)
    ("oz", "Oz Changes", {"visibility": Visibility.EVERYONE}, 700, False),
    ("pam", "Pam Changes", {"visibility": Visibility.EVERYONE}, None, False),
]


@dataclass
class Served:
    base: str
    home: Path
    tokens: dict[str, str]  # "ada", "bob", "kim", "admin" -> bearer token
    partner_secret: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    ids: dict[str, str]
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base, timeout=10, follow_redirects=False)

    def headers(self, who: str | None = None, **extra: str) -> dict[str, str]:
        h = dict(extra)
        if who is not None:
            h["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        return h

    def get(self, path: str, who: str | None = None, **headers: str) -> httpx.Response:
        return self.client.get(path, headers=self.headers(who, **headers))

    def request(self, method: str, path: str, who: str | None = None, **kw) -> httpx.Response:
        headers = {**self.headers(who), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def app(self) -> App:
        return App(Settings.load(self.home))

    def wait_for(self, check: Callable[[], bool], timeout: float = 3.0) -> float:
        """Poll until `check()` holds; returns the seconds it took (fails after timeout)."""
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(0.02)
        return time.monotonic() - start


def seed(
    home: Path,
) -> tuple[dict[str, str], str, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, dict[str, str]]:
    app = App(Settings.load(home))
    app.settings.write_default()
    ids: dict[str, str] = {}
    try:
        for local, name, overrides, side, directory in PEOPLE:
            user = User(id=f"id-{local}", address=addr(local), display_name=name, **overrides)
            if local == "ada":
                user.aliases = ["a.lovelace@contoso-alias.test"]
            app.store.add_user(user)
            ids[local] = user.id
            if side:
                app.photos.set(user.id, portrait(len(local) + ord(local[0]), side, side))
            if directory:
                put_directory(app, user.id)
        app.photos.remove(ids["gus"])
        tokens = {
            who: auth.create_token(app.store, addr(who))[1]
            for who in ("ada", "bob", "kim", "gus", "max", "pam")
        }
        tokens["admin"] = auth.create_token(app.store, "root@contoso.test", admin=True)[1]
        _p, secret = auth.add_partner(app.store, "partner.example")
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        for domain, key in (("rsa.example", rsa_key), ("ec.example", ec_key)):
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            auth.add_partner(app.store, domain, pem)
    finally:
        app.close()
    assert secret is not None
    return tokens, secret, rsa_key, ec_key, ids


ALLOWED_DEFAULT = "https://static.contoso.test/avatars/"


def serve_log(home: Path) -> Path:
    """Where a test server's stderr (the access log) goes: in its data folder, or beside it
    when the folder is read-only (the read-only store tests)."""
    inside = home / "serve.log"
    try:
        inside.open("ab").close()
        return inside
    except OSError:
        return home.parent / f"{home.name}-serve.log"


def start_server(
    home: Path,
    extra_env: dict[str, str] | None = None,
    *,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    port: int | None = None,
    wrap: list[str] | None = None,
) -> tuple[subprocess.Popen, str]:
    """`userphoto serve` on a free port (`wrap`: a command it runs under, e.g. prlimit)."""
    port = port or free_port()
    env = {
        **os.environ,
        "USERPHOTO_HOME": str(home),
        "USERPHOTO_AVATAR_DEFAULT_URL_ALLOW": f'["{ALLOWED_DEFAULT}"]',
        **(extra_env or {}),
    }
    # stderr (the access log) goes to a file: a pipe nobody reads would fill and stall it.
    log_path = serve_log(home)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [
            *(wrap or []),
            str(BIN / "userphoto"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    base = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1, verify=verify).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = log_path.read_text(errors="replace")
            raise RuntimeError(f"userphoto serve did not start:\n{err}")
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def serving(home: Path, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    """Seed `home`, start a server on it, and stop it afterwards."""
    tokens, secret, rsa_key, ec_key, ids = seed(home)
    proc, base = start_server(home, extra_env)
    s = Served(base, home, tokens, secret, rsa_key, ec_key, ids)
    try:
        yield s
    finally:
        s.client.close()
        stop_server(proc)


@pytest.fixture(scope="session")
def served_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One seeded server for the whole session (read-mostly tests), on SQLite."""
    with serving(tmp_path_factory.mktemp("served-home")) as s:
        yield s


@pytest.fixture(scope="session")
def served_on_postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The same seeded server on a PostgreSQL database of its own, named in its data folder's
    config, so the server, the seeding, `Served.app()` and CLI runs on that folder all use it."""
    with pg_database() as url:
        home = tmp_path_factory.mktemp("served-pg-home")
        (home / "userphoto.toml").write_text(f"[store]\nurl = {json.dumps(url)}\n")
        with serving(home) as s:
            app = s.app()
            try:
                assert app.settings.store_url == url  # not silently SQLite
            finally:
                app.close()
            yield s


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Served:
    """The seeded server: on SQLite, or on each store in turn for a test marked
    `@on_each_store`."""
    store = getattr(request, "param", "sqlite")
    return request.getfixturevalue(f"served_on_{store}")


# A test against `served` that must hold on both stores (every surface, uploads and deletes,
# changes from another process): it runs once on SQLite and once on PostgreSQL.
on_each_store = pytest.mark.parametrize("served", STORES, indirect=True)


@pytest.fixture
def served_policy_off(tmp_path: Path) -> Iterator[Served]:
    """A server of its own with self-service disabled by policy ([policy] self_service)."""
    home = tmp_path / "fresh-home"
    home.mkdir()
    with serving(home, {"USERPHOTO_POLICY_SELF_SERVICE": "false"}) as s:
        yield s
