"""A real OpenLDAP `slapd` in a temp dir on a free loopback port, with AD's thumbnailPhoto.

`Slapd` is also used by bench/sync.py (seeding 10,000 users offline with `slapadd`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ldap3
import pytest
from PIL import Image, ImageDraw

import userphoto.directory
from tests.support import missing
from tests.support.net import free_port

SCHEMA = Path(userphoto.directory.__file__).parent / "schema" / "ad-photo.schema"
SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "secret-test-password"
HAVE_SLAPD = shutil.which("slapd") is not None or Path("/usr/sbin/slapd").exists()
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"


def photo(index: int, variant: int = 0, size: int = 96) -> bytes:
    """A small distinct JPEG for user `index` (variant > 0: a changed photo)."""
    colour = ((index * 37 + variant * 101) % 256, (index * 91) % 256, (variant * 53 + 90) % 256)
    image = Image.new("RGB", (size, size), colour)
    ImageDraw.Draw(image).text((8, size // 3), f"{index}/{variant}", fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def uid(index: int) -> str:
    return f"user{index:05d}"


def user_dn(index: int) -> str:
    return f"uid={uid(index)},{PEOPLE}"


def user_entry(index: int, picture: bytes | None) -> dict[str, object]:
    """Attributes of test user `index`, as an ldap3 add takes them."""
    attrs: dict[str, object] = {
        "objectClass": ["inetOrgPerson", "userphotoADUser"],
        "uid": uid(index),
        "cn": f"Test User {index}",
        "sn": f"User{index}",
        "givenName": "Test",
        "displayName": f"Test User {index}",
        "mail": f"{uid(index)}@example.org",
        "employeeID": f"E{index:05d}",
        "sAMAccountName": uid(index),
        "proxyAddresses": [f"SMTP:{uid(index)}@example.org", f"smtp:u{index}@alias.example.org"],
    }
    if picture is not None:
        attrs["thumbnailPhoto"] = picture
    return attrs


def ldif(
    indexes: Iterable[int],
    pictures: Callable[[int], bytes | None] = photo,
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC),
) -> Iterator[str]:
    """LDIF for slapadd. Entries carry old modifyTimestamps a minute apart, as in a directory
    that has existed for a while (so a delta right after seeding sees only real changes)."""
    yield (
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\n"
        f"dc: example\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
    )
    for i in indexes:
        stamp = (start + timedelta(minutes=i)).strftime("%Y%m%d%H%M%SZ")
        lines = [f"dn: {user_dn(i)}", f"modifyTimestamp: {stamp}", f"createTimestamp: {stamp}"]
        for key, value in user_entry(i, pictures(i)).items():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, bytes):
                    lines.append(f"{key}:: {base64.b64encode(v).decode()}")
                else:
                    lines.append(f"{key}: {v}")
        yield "\n".join(lines) + "\n\n"


class Slapd:
    """`syncprov=False` starts one without the syncprov overlay (no RFC 4533 content sync), as
    a server that only supports polling."""

    def __init__(self, root: Path, port: int | None = None, *, syncprov: bool = True):
        self.root = root
        self.port = port or free_port()
        self.syncprov = syncprov
        self.data = root / "data"
        self.conf = root / "slapd.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.data.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "include /etc/ldap/schema/core.schema\n"
            "include /etc/ldap/schema/cosine.schema\n"
            "include /etc/ldap/schema/inetorgperson.schema\n"
            f"include {SCHEMA}\n"
            f"pidfile {root}/slapd.pid\n"
            "modulepath /usr/lib/ldap\n"
            "moduleload back_mdb\n"
            + ("moduleload syncprov\n" if syncprov else "")
            + "sizelimit unlimited\n"
            "database mdb\n"
            "maxsize 2147483648\n"
            f'suffix "{SUFFIX}"\n'
            f'rootdn "{ADMIN_DN}"\n'
            f"rootpw {ADMIN_PASSWORD}\n"
            f"directory {self.data}\n"
            "index objectClass,mail,uid eq\n"
            "index entryUUID,entryCSN,modifyTimestamp eq\n"
            # RFC 4533 provider; the session log lets a resumed consumer get deletions as
            # deletes (not a listing of every entry present) after a short absence.
            + (
                "overlay syncprov\nsyncprov-checkpoint 100 1\nsyncprov-sessionlog 10000\n"
                if syncprov
                else ""
            )
        )

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def seed(self, entries: Iterable[str]) -> None:
        """Load LDIF offline (the server must be stopped): ~10,000 entries per second."""
        path = self.root / "seed.ldif"
        with path.open("w") as f:
            f.writelines(entries)
        subprocess.run(
            # -w: write the contextCSN, so a syncrepl consumer has a starting state.
            [SLAPADD, "-q", "-w", "-f", str(self.conf), "-l", str(path)],
            check=True,
            capture_output=True,
        )
        path.unlink()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(self.conf), "-h", self.uri + "/", "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("slapd did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        self.proc = None

    def connection(self) -> ldap3.Connection:
        server = ldap3.Server(self.uri, get_info=ldap3.NONE)
        return ldap3.Connection(
            server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True, raise_exceptions=True
        )

    def directory_settings(self, **extra: object) -> dict[str, object]:
        """A `[directory]` table pointing at this server."""
        return {
            "uri": self.uri,
            "bind_dn": ADMIN_DN,
            "bind_password": ADMIN_PASSWORD,
            "base_dn": SUFFIX,
            "retries": 2,
            "backoff": 0.1,
            "timeout": 5,
            **extra,
        }


def need_slapd() -> None:
    if not HAVE_SLAPD:
        missing("slapd is not installed (Debian packages slapd, ldap-utils)")


@pytest.fixture
def slapd_installed() -> None:
    """For test modules that start their own slapd: skip (fail under CI) without one."""
    need_slapd()


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """An empty directory (suffix and ou=people only), running."""
    need_slapd()
    server = Slapd(tmp_path / "slapd")
    server.seed(ldif([]))
    server.start()
    yield server
    server.stop()


class SlowProxy:
    """A loopback TCP proxy in front of a server that can hold every answer back `delay`
    seconds: a directory that is up but too slow."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.delay = 0.0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while data := source.recv(65536):
                if slow and self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
