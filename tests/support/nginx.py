"""nginx in front of `userphoto serve`, as docs/deploy/nginx.conf documents it: the main
file of a test's own nginx, and the documented site file with the test's ports and paths.
Used by the deploy tests and the walkthrough."""

from __future__ import annotations

from pathlib import Path

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
