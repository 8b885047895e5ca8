"""A real Samba AD DC for the AD paths (objectGUID, proxyAddresses, userAccountControl, uSNChanged).

Samba's LDAP port is fixed at 389, so each server runs in its own network namespace (we are
root here and in CI) and the test talks to it from inside that namespace: `netns()` moves the
calling thread there (threads it starts inherit it). Provisioning takes seconds, so it happens
once per session into a golden copy; each test gets a copy of that (~50 ms) and its own server.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ldap3
import pytest

from tests.support import missing

REALM = "UP.EXAMPLE"
DOMAIN = "UP"
BASE_DN = "DC=up,DC=example"
USERS = f"CN=Users,{BASE_DN}"
ADMIN_DN = f"CN=Administrator,{USERS}"
ADMIN_PASSWORD = "Passw0rd-for-tests!"
URI = "ldap://127.0.0.1:389"
CLONE_NEWNET = 0x40000000
# UF_NORMAL_ACCOUNT | UF_PASSWD_NOTREQD: an enabled account that needs no password (tests
# create people, not logins); | UF_ACCOUNTDISABLE (0x2) for a disabled one.
ENABLED, DISABLED = 0x220, 0x222

_libc = ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """Why Samba tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces for Samba's fixed port 389)"
    for tool in ("samba", "samba-tool", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: samba samba-ad-provision iproute2)"
    probe = f"up-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the body (this thread and threads it starts) inside network namespace `name`."""
    home = f"/proc/self/task/{ctypes.CDLL(None).syscall(186)}/ns/net"  # gettid() on x86-64
    original = os.open(home, os.O_RDONLY)
    try:
        _setns(f"/run/netns/{name}")
        yield
    finally:
        try:
            if _libc.setns(original, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "could not return to the original netns")
        finally:
            os.close(original)


def provision(target: Path) -> None:
    subprocess.run(
        [
            "samba-tool",
            "domain",
            "provision",
            f"--targetdir={target}",
            f"--realm={REALM}",
            f"--domain={DOMAIN}",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--host-name=dc1",
            f"--adminpass={ADMIN_PASSWORD}",
            "--use-rfc2307",
            "--option=interfaces = lo",
            "--option=bind interfaces only = yes",
            "--option=server services = ldap",
            f"--option=log file = {target}/log.%m",
            # Not the machine-wide /run/samba: several DCs (parallel test runs) must coexist.
            f"--option=pid directory = {target}/run",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Plain simple binds on loopback (provision drops this option, so it goes in afterwards).
    conf = target / "etc" / "smb.conf"
    conf.write_text(
        conf.read_text().replace(
            "[global]\n", "[global]\n\tldap server require strong auth = no\n", 1
        )
    )


class Samba:
    def __init__(self, root: Path):
        self.root = root
        self.ns = f"up-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "smb.conf"

    def start(self, timeout: float = 30) -> None:
        if not Path(f"/run/netns/{self.ns}").exists():
            subprocess.run(["ip", "netns", "add", self.ns], check=True)
            subprocess.run(
                ["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"], check=True
            )
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                "samba",
                "--foreground",
                "--no-process-group",
                "-M",
                "single",
                "-s",
                str(self.conf),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        with netns(self.ns):
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("samba exited: " + self.proc.stderr.read().decode()[-2000:])  # type: ignore[union-attr]
                try:
                    conn = self._connection()
                    conn.unbind()
                    return
                except Exception:
                    time.sleep(0.1)
        raise RuntimeError(f"samba did not answer LDAP within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        subprocess.run(["ip", "netns", "del", self.ns], check=False, capture_output=True)

    def _connection(self) -> ldap3.Connection:
        server = ldap3.Server(URI, get_info=ldap3.NONE, connect_timeout=2)
        return ldap3.Connection(
            server,
            ADMIN_DN,
            ADMIN_PASSWORD,
            auto_bind=True,
            raise_exceptions=True,
            receive_timeout=10,
        )

    def connection(self) -> ldap3.Connection:
        """An admin connection; call inside `netns(self.ns)`."""
        return self._connection()

    def directory_settings(self, **extra: object) -> dict[str, object]:
        return {
            "uri": URI,
            "bind_dn": ADMIN_DN,
            "bind_password": ADMIN_PASSWORD,
            "base_dn": BASE_DN,
            "retries": 2,
            "backoff": 0.1,
            "timeout": 10,
            **extra,
        }


def add_person(
    conn: ldap3.Connection,
    name: str,
    *,
    photo: bytes | None = None,
    disabled: bool = False,
    aliases: tuple[str, ...] = (),
    employee_id: str | None = None,
) -> str:
    dn = f"CN={name},{USERS}"
    mail = f"{name.lower()}@up.example"
    attrs: dict[str, object] = {
        "objectClass": ["top", "person", "organizationalPerson", "user"],
        "sAMAccountName": name.lower(),
        "givenName": name,
        "sn": "Tester",
        "displayName": f"{name} Tester",
        "mail": mail,
        "userAccountControl": str(DISABLED if disabled else ENABLED),
        "proxyAddresses": [f"SMTP:{mail}", *(f"smtp:{a}" for a in aliases)],
    }
    if employee_id:
        attrs["employeeID"] = employee_id
    if photo is not None:
        attrs["thumbnailPhoto"] = photo
    conn.add(dn, attributes=attrs)
    return dn


def _sockets(folder: str, names: list[str]) -> list[str]:
    """Unix sockets of the golden server's run: not copyable, and recreated at start."""
    return [n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(folder, n)).st_mode)]


@pytest.fixture(scope="session")
def samba_golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Provisioned once per session and started once (so copies skip TLS key generation)."""
    reason = available()
    if reason:
        missing(f"Samba AD DC tests cannot run: {reason}")
    golden = tmp_path_factory.mktemp("samba") / "golden"
    provision(golden)
    first = Samba(golden)
    try:
        first.start(timeout=60)
    finally:
        first.destroy()
    return golden


@pytest.fixture
def samba(samba_golden: Path, tmp_path: Path) -> Iterator[Samba]:
    """A running Samba AD DC, a private copy of the golden one, in its own netns."""
    root = tmp_path / "samba"
    shutil.copytree(samba_golden, root, symlinks=True, ignore=_sockets)
    conf = root / "etc" / "smb.conf"
    conf.write_text(conf.read_text().replace(str(samba_golden), str(root)))
    server = Samba(root)
    server.start()
    yield server
    server.destroy()
