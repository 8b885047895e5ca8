"""A directly exposed `userphoto serve` (no proxy in front) under a connection flood, over
raw sockets: 1,000 idle connections and 512 busy ones (uploads whose bodies never finish)
must not lock a new client out. (The per-client and the global caps answered with 503 are
nginx's, in front: tests/deploy/test_deploy_nginx_limits.py.)"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.server import (
    BIN,
    Served,
    addr,
    serve_log,
    serving,
    stop_server,
)
from userphoto.app import App
from userphoto.config import Settings


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with the default settings (timeouts and connection cap included)."""
    with serving(tmp_path_factory.mktemp("exposed-home")) as served:
        yield served


def fresh_get(served: Served) -> tuple[int, float]:
    """A new client: a new connection, one cached GET; (status, seconds)."""
    host, port = served.base.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"GET /v1/users/{addr('ada')}/photo?size=96 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {served.tokens['bob']}\r\nConnection: close\r\n\r\n".encode()
        )
        try:
            head = sock.recv(100)
        except TimeoutError:
            return 0, time.perf_counter() - started
    return int(head.split()[1]) if head.startswith(b"HTTP/") else 0, time.perf_counter() - started


def test_a_new_client_is_served_beside_1000_idle_and_512_busy_connections(
    exposed: Served,
) -> None:
    assert fresh_get(exposed)[0] == 200  # cached before the flood
    host, port = exposed.base.removeprefix("http://").split(":")
    upload = (
        f"PUT /v1/users/{addr('oz')}/photo HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {exposed.tokens['admin']}\r\nContent-Type: image/jpeg\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode() + b"\xff" * 1000
    socks: list[socket.socket] = []
    try:
        for _ in range(1000):  # idle: connected, never a byte
            socks.append(socket.create_connection((host, int(port)), timeout=5))
        for _ in range(512):  # busy: an upload's head and the start of its body
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(upload)
            socks.append(sock)
        time.sleep(0.5)
        results = [fresh_get(exposed) for _ in range(5)]
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
    assert {status for status, _ in results} == {200}, results
    seconds = sorted(s for _, s in results)
    assert seconds[2] < 0.1, seconds  # the median new client under 100 ms
    assert httpx.get(exposed.base + "/healthz", timeout=5).status_code == 200


def test_serve_raises_its_open_file_limit_to_the_hard_one(tmp_path: Path) -> None:
    """systemd's default soft limit (1,024 open files) would refuse connections long before
    [server] max_connections: `serve` runs with its soft limit raised to the hard one
    (granian raises it at start; this guards the default cap's assumption)."""
    App(Settings.load(tmp_path)).settings.write_default()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard open-file limit here is {hard}: nothing to raise to")
    port = free_port()

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    with serve_log(tmp_path).open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "userphoto"), "serve", "--port", str(port)],
            env={**os.environ, "USERPHOTO_HOME": str(tmp_path)},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            preexec_fn=low_soft_limit,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        soft = line.split()[3]
        assert soft == str(hard) or (soft == "unlimited" and hard == resource.RLIM_INFINITY), line
    finally:
        stop_server(proc)
