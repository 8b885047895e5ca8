"""nginx in front of `userphoto serve`, as docs/deploy/nginx.conf documents it: the main
file of a test's own nginx, and the documented site file with the test's ports and paths.
Used by the deploy tests and the walkthrough."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import missing
from tests.support.net import free_port
from tests.support.tls import self_signed

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx.conf"

# The main file as the guide asks for it (docs/deploy/nginx.conf's connection-limit block).
MAIN = """
worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/userphoto.conf;
}}
"""


def site_config(tmp: Path, upstream: int, https: int, http: int, cert: Path, key: Path) -> str:
    """The documented file with the test's ports and paths; every directive kept."""
    text = DOC.read_text()
    replacements = {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen [::]:80;": "",
        "/etc/ssl/userphoto/fullchain.pem": str(cert),
        "/etc/ssl/userphoto/privkey.pem": str(key),
        "/var/cache/nginx/userphoto": str(tmp / "cache"),
        "/var/log/nginx/userphoto.log": str(tmp / "access.log"),
    }
    for old, new in replacements.items():
        assert old in text, f"{DOC} no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    url: str  # https, the documented TLS server block
    plain: str  # the port-80 server block
    port: int  # url's port
    cert: Path  # the test CA's certificate for url
    tmp: Path  # nginx's folder (access.log, error.log)


@contextmanager
def documented_nginx(upstream: int, worker_connections: int = 4096) -> Iterator[Nginx]:
    """Debian's nginx from docs/deploy/nginx.conf in front of the server on `upstream`,
    ready (its /healthz answers 200 through nginx); stopped and its folder removed after."""
    if shutil.which("nginx") is None:
        missing("nginx is not installed (scripts/setup.sh installs nginx-light)")
    # nginx workers run unprivileged when the tests run as root: a folder they can reach
    # (pytest's own are private to root) with temp and cache folders they may write.
    tmp = Path(tempfile.mkdtemp(prefix="userphoto-nginx-"))
    tmp.chmod(0o755)
    for name in ("cache", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir()
        (tmp / name).chmod(0o777)
    cert, key = self_signed(tmp)
    https, http = free_port(), free_port()
    (tmp / "userphoto.conf").write_text(site_config(tmp, upstream, https, http, cert, key))
    main = MAIN.format(tmp=tmp).replace(
        "worker_connections 4096;", f"worker_connections {worker_connections};"
    )
    (tmp / "nginx.conf").write_text(main)
    nginx = subprocess.Popen(
        ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"https://127.0.0.1:{https}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(url + "/healthz", verify=str(cert), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if nginx.poll() is not None or time.monotonic() > deadline:
                err = nginx.stderr.read().decode() if nginx.stderr else ""
                raise RuntimeError(f"nginx did not start: {err}")
            time.sleep(0.1)
        yield Nginx(url, f"http://127.0.0.1:{http}", https, cert, tmp)
    finally:
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
