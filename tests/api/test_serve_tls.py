"""`userphoto serve` speaking TLS itself ([server] tls_cert / tls_key): a real TLS socket, a
certificate made here for 127.0.0.1, HTTP/1.1 answers through it and HTTP/2 offered by ALPN."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import addr, seed, start_server, stop_server
from tests.support.tls import self_signed


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    home = tmp_path_factory.mktemp("tls-home")
    tokens, *_rest = seed(home)
    cert, key = self_signed(home)
    proc, base = start_server(
        home,
        {"USERPHOTO_SERVER_TLS_CERT": str(cert), "USERPHOTO_SERVER_TLS_KEY": str(key)},
        scheme="https",
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    try:
        yield base, cert, tokens
    finally:
        stop_server(proc)


def test_https_answers_photos_with_a_verified_certificate(tls_server) -> None:
    base, cert, tokens = tls_server
    assert base.startswith("https://")
    trusted = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=base, verify=trusted, timeout=10) as client:
        r = client.get(
            f"/v1/users/{addr('ada')}/photo?size=96",
            headers={"Authorization": f"Bearer {tokens['bob']}"},
        )
        assert r.status_code == 200 and r.content.startswith(b"\xff\xd8")
        assert r.http_version == "HTTP/1.1"
        with pytest.raises(httpx.ConnectError):  # and a client that trusts nobody refuses it
            httpx.get(base + "/healthz", timeout=5)


def test_http2_is_offered_over_tls(tls_server) -> None:
    base, cert, _tokens = tls_server
    host, port = base.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.3", "TLSv1.2")
        # The HTTP/2 connection preface and an empty SETTINGS frame: the server answers
        # with its own SETTINGS frame (type 4), i.e. it speaks HTTP/2 here.
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        frame = tls.recv(9)
        assert len(frame) == 9 and frame[3] == 4


def test_half_a_tls_configuration_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess

    from tests.support.server import BIN

    seed(tmp_path)
    proc = subprocess.run(
        [str(BIN / "userphoto"), "serve", "--port", "0"],
        env={
            "USERPHOTO_HOME": str(tmp_path),
            "USERPHOTO_SERVER_TLS_CERT": str(tmp_path / "cert.pem"),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "tls_key" in proc.stderr and "Traceback" not in proc.stderr
