"""docs/deployment.md followed end to end, with real parts on one machine.

What the guide sets up, each part the real thing: a PostgreSQL database; two `userphoto serve`
nodes on their own ports and data folders with the same `userphoto.toml`; `userphoto sync
--watch` twice (one active, one standby by the sync lease) against slapd with write-back on;
nginx started from docs/deploy/nginx.conf with the two nodes as its round-robin upstream and
TLS; the test OpenID provider (tests/oidc) with admins by group. Then a person does what the
guide promises, in Chromium through nginx: signs in with the organization account (each request
lands on either node), uploads a photo, and the photo is served by both nodes and written back
to the directory's thumbnailPhoto.

Only addresses, ports and paths differ from the guide: everything listens on loopback, the
"machines" are folders, and the identity provider and directory are the test ones.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ldap3
import pytest
from PIL import Image

from tests.conftest import BIN
from tests.oidc.provider import OpenIdProvider
from tests.support.browser import provider_login, shot
from tests.support.net import free_port
from tests.support.nginx import MAIN, site_config
from tests.support.postgres import NewDatabase
from tests.support.server import serve_log, start_server, stop_server
from tests.support.slapd import Slapd, ldif, need_slapd, uid, user_dn
from tests.support.tls import self_signed
from userphoto.config import BY_SECTION, toml_value

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "astronaut.jpg"
CLIENT_SECRET = "walkthrough-client-secret-" + "z" * 24
MEMBER, ADMIN = 1, 2  # directory users: the one who uploads, the one in photo-admins


def address(index: int) -> str:
    return f"{uid(index)}@example.org"


def toml(settings: dict[str, dict[str, Any]]) -> str:
    """userphoto.toml text, every key one the guide tells an administrator to set (and so one
    this version declares: the nodes would refuse a misspelt one anyway)."""
    lines: list[str] = []
    for section, table in settings.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            assert key in BY_SECTION[section], f"the guide's [{section}] {key} is not declared"
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class Deployment:
    public: str  # https://… through nginx, as browsers see it
    nodes: list[str]  # each node's own address (what nginx proxies to)
    homes: list[Path]  # each node's data folder
    syncs: list[subprocess.Popen]
    sync_logs: list[Path]
    cert: Path
    slapd: Slapd
    provider: OpenIdProvider

    def cli(self, *args: str) -> str:
        """A command an administrator runs on node 1 (the store is the shared database)."""
        proc = subprocess.run(
            [str(BIN / "userphoto"), "--home", str(self.homes[0]), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"userphoto {' '.join(args)}: {proc.stderr}"
        return proc.stdout


def wait_until(what: str, check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def start_nginx(tmp: Path, upstreams: list[int]) -> tuple[subprocess.Popen, str, Path]:
    """docs/deploy/nginx.conf with the nodes as its upstream (as the guide's two-node block).
    Answers 502 until the nodes start."""
    for name in ("cache", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir()
        (tmp / name).chmod(0o777)
    cert, key = self_signed(tmp)
    https, http = free_port(), free_port()
    text = site_config(tmp, upstreams[0], https, http, cert, key)
    first = f"server 127.0.0.1:{upstreams[0]};"
    text = text.replace(first, "\n    ".join(f"server 127.0.0.1:{port};" for port in upstreams))
    (tmp / "userphoto.conf").write_text(text)
    (tmp / "nginx.conf").write_text(MAIN.format(tmp=tmp))
    proc = subprocess.Popen(
        ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    public = f"https://127.0.0.1:{https}"

    def up() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            httpx.get(public + "/healthz", verify=str(cert), timeout=1)
        except httpx.HTTPError:
            return False
        return True  # TLS and HTTP answered (502: no node yet)

    wait_until("nginx", up, 15)
    return proc, public, cert


@pytest.fixture
def deployment(new_pg_database: NewDatabase, tmp_path: Path) -> Iterator[Deployment]:
    need_slapd()
    if shutil.which("nginx") is None:
        from tests.support import missing

        missing("nginx is not installed (scripts/setup.sh installs nginx-light)")
    started: list[Callable[[], None]] = []
    try:
        # The directory: two people, no photos yet.
        slapd = Slapd(tmp_path / "slapd")
        slapd.seed(ldif([MEMBER, ADMIN], pictures=lambda _i: None))
        slapd.start()
        started.append(slapd.stop)

        # nginx's port is the public address, which the provider's client registration names:
        # the nodes' ports first, then nginx, then the provider, then the nodes.
        ports = [free_port(), free_port()]
        # Workers run unprivileged when the tests run as root: a folder they can reach.
        front = Path(tempfile.mkdtemp(prefix="userphoto-walk-"))
        front.chmod(0o755)
        started.append(lambda: shutil.rmtree(front, ignore_errors=True))
        nginx, public, cert = start_nginx(front, ports)
        started.append(lambda: (nginx.terminate(), nginx.wait(10)))
        provider = OpenIdProvider(
            tmp_path,
            clients=[
                {
                    "client_id": "userphoto",
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [f"{public}/signin/oidc/callback"],
                    "post_logout_redirect_uris": [f"{public}/signin"],
                }
            ],
            groups={address(ADMIN): ["staff", "photo-admins"], address(MEMBER): ["staff"]},
        ).start()
        started.append(provider.stop)

        # One userphoto.toml for every node and both syncs (docs/deployment.md); the bind
        # password in a file, as the guide's systemd credential.
        directory = {**slapd.directory_settings(), "writeback": True}
        bind_password = directory.pop("bind_password")
        config = toml(
            {
                "store": {"url": new_pg_database()},
                "server": {
                    "public_url": public,
                    "trusted_proxies": ["127.0.0.1/32", "::1/128"],
                },
                "web": {"secure_cookies": True},
                "oidc": {
                    "issuer": provider.issuer,
                    "client_id": "userphoto",
                    "client_secret_file": "oidc-client-secret",
                    "scopes": "openid email profile groups",
                    "admin_claim": "groups",
                    "admin_values": ["photo-admins"],
                },
                "directory": {**directory, "bind_password_file": "bind-password"},
            }
        )
        # Each machine gets what the guide installs there, and nothing from another machine:
        # the config, and the secrets an administrator installs (a node's OIDC secret, a
        # sync's bind password). Sessions and their keys live in the database.
        homes = [tmp_path / name for name in ("node1", "node2", "sync1", "sync2")]
        for home in homes:
            home.mkdir()
            (home / "userphoto.toml").write_text(config)
        secrets = {"oidc-client-secret": CLIENT_SECRET, "bind-password": bind_password}
        for home in homes:
            name = "oidc-client-secret" if home.name.startswith("node") else "bind-password"
            (home / name).write_text(secrets[name] + "\n")
            (home / name).chmod(0o600)

        nodes = []
        for home, port in zip(homes[:2], ports, strict=True):
            proc, base = start_server(home, port=port)
            started.append(lambda proc=proc: stop_server(proc))
            nodes.append(base)

        syncs, sync_logs = [], []
        for home in homes[2:]:
            log = home / "sync.log"
            with log.open("w") as sink:
                sync = subprocess.Popen(
                    [str(BIN / "userphoto"), "--home", str(home), "sync", "--watch"],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(lambda sync=sync: (sync.terminate(), sync.wait(30)))
            syncs.append(sync)
            sync_logs.append(log)
            time.sleep(0.5)  # the first one started takes the lease
        yield Deployment(public, nodes, homes[:2], syncs, sync_logs, cert, slapd, provider)
    finally:
        for stop in reversed(started):
            stop()


def thumbnail_photo(slapd: Slapd, index: int) -> bytes | None:
    conn = slapd.connection()
    try:
        conn.search(user_dn(index), "(objectClass=*)", ldap3.BASE, attributes=["thumbnailPhoto"])
        values = conn.entries[0].entry_attributes_as_dict.get("thumbnailPhoto") or []
        return values[0] if values else None
    finally:
        conn.unbind()


def browser_routes(log: Path) -> set[str]:
    """The routes of a node's access log (JSON lines) other than health checks and the API."""
    routes = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            route = json.loads(line).get("route") or ""
            if not route.startswith(("/healthz", "/readyz", "/v1/")):
                routes.add(route)
    return routes


def sign_in(page: Any, deployment: Deployment, login: str) -> None:
    """The organization sign-in, through nginx, as a person does it."""
    page.goto(f"{deployment.public}/signin")
    page.get_by_role("link", name="Sign in with your organization account").click()
    page.wait_for_url(f"{deployment.provider.issuer}/**")
    # The provider refuses an authorization request whose redirect_uri it does not know: the
    # node must name the public address behind nginx ([server] public_url).
    page.wait_for_load_state()
    if not page.locator("input[name=login], button:has-text('Continue')").count():
        raise AssertionError(f"the provider refused the sign-in: {page.inner_text('body')}")
    provider_login(page, login)
    page.wait_for_url(f"{deployment.public}/**")
    page.wait_for_load_state()
    if urlsplit(page.url).path not in ("/me", "/admin"):
        error = page.locator("#signin-error, main").first.inner_text()
        raise AssertionError(f"sign-in as {login} ended on {page.url}: {error}")


def test_the_deployment_guide_end_to_end(deployment: Deployment, browser: Any) -> None:
    d = deployment
    # The directory's people reach the store through the active sync.
    wait_until("the first sync", lambda: address(MEMBER) in d.cli("user", "list"), 60)
    logs = [log.read_text() for log in d.sync_logs]
    assert sum("active (" in text for text in logs) == 1, logs  # one active ...
    assert sum("standby (" in text for text in logs) == 1, logs  # ... one standing by
    assert "active sync" in d.cli("sync", "--status")
    token = d.cli("token", "create", address(ADMIN), "--admin").strip()

    def served(base: str) -> bytes | None:
        """The member's saved (HD) photo as `base` serves it to an admin, if it has one."""
        r = httpx.get(
            f"{base}/v1/users/{address(MEMBER)}/photo?size=240",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(d.cert),
            timeout=10,
        )
        return r.content if r.status_code == 200 and r.headers["x-photo-source"] == "hd" else None

    # Both nodes answer directly and through nginx (round robin); no photo yet anywhere.
    # (nginx may have marked a node failed while it was starting: it tries again after
    # the upstream's fail_timeout, 10 s by default, as it would in production.)
    def ready(base: str) -> bool:
        return httpx.get(f"{base}/readyz", verify=str(d.cert), timeout=10).status_code == 200

    for base in (*d.nodes, d.public):
        wait_until(f"{base}/readyz", lambda base=base: ready(base), 30)
        assert served(base) is None
    assert thumbnail_photo(d.slapd, MEMBER) is None

    context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    context.set_default_timeout(15_000)
    # Nothing leaves loopback (the provider's pages import a web font).
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost")
            else route.abort()
        ),
    )
    try:
        page = context.new_page()
        sign_in(page, d, address(MEMBER))
        assert urlsplit(page.url).path == "/me"
        page.get_by_text(f"Signed in as {address(MEMBER)}.").wait_for()

        # Upload through nginx: the requests of the page land on either node.
        page.set_input_files(
            "#file",
            files=[{"name": "me.jpg", "mimeType": "image/jpeg", "buffer": SAMPLE.read_bytes()}],
        )
        page.locator("#crop:visible, #upload-error:visible").first.wait_for()
        if page.locator("#upload-error").is_visible():
            shot(page, "walkthrough-upload-refused")
            raise AssertionError(f"upload refused: {page.inner_text('#upload-error')}")
        page.get_by_role("button", name="Save photo").click()
        page.get_by_text("Saved.").wait_for()

        # Admins by group: the second person lands on the directory page as an admin.
        admin = browser.new_context(ignore_https_errors=True)
        try:
            admin_page = admin.new_page()
            admin_page.set_default_timeout(15_000)
            sign_in(admin_page, d, address(ADMIN))
            assert urlsplit(admin_page.url).path == "/admin"
            admin_page.locator(".badge", has_text="admin").wait_for()
        finally:
            admin.close()
    finally:
        context.close()

    # Served by both nodes: the same saved photo, whichever node took the upload.
    first = wait_until("node 1 serving the photo", lambda: served(d.nodes[0]), 10)
    second = wait_until("node 2 serving the photo", lambda: served(d.nodes[1]), 10)
    assert first == second == served(d.public)
    assert Image.open(io.BytesIO(first)).size == (240, 240)
    # The browser's requests were spread over both nodes by nginx.
    for home in d.homes:
        assert browser_routes(serve_log(home)), f"no page request reached {home.name}"

    # Written back to the directory by the active sync: a 96×96 JPEG within AD's 100 KB.
    written = wait_until("thumbnailPhoto", lambda: thumbnail_photo(d.slapd, MEMBER), 30)
    assert written.startswith(b"\xff\xd8") and len(written) <= 100 * 1024
    assert Image.open(io.BytesIO(written)).size == (96, 96)

    # The standby takes over when the active sync stops (a clean stop hands the lease over).
    active = next(i for i, log in enumerate(d.sync_logs) if "active (" in log.read_text())
    standby = d.sync_logs[1 - active]
    d.syncs[active].terminate()
    d.syncs[active].wait(30)
    wait_until("the standby to take over", lambda: "active (" in standby.read_text(), 10)

    # Nothing was copied between the machines, and no node made a file another would need: a
    # node's folder holds the config, its OIDC secret and the test's log of its output.
    for home in d.homes:
        assert {p.name for p in home.iterdir()} == {
            "userphoto.toml",
            "oidc-client-secret",
            "serve.log",
        }, home.name
