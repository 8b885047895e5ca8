"""docs/deploy/nginx.conf's connection limits, through real nginx in front of a real
`userphoto serve`: a per-client cap and a global cap answered with 503 at once (not a stall),
idle keep-alive connections held cheaply, and a new client still served quickly while 1,000
idle and 512 busy connections are open. (granian alone has neither cap: connections beyond
its [server] max_connections wait silently in the listen backlog.)

Clients come from several loopback addresses (127.0.0.N) so the per-address cap can be told
from the global one."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.support.nginx import documented_nginx
from tests.support.server import addr, seed, start_server, stop_server

PER_CLIENT = 32  # limit_conn userphoto_per_client in docs/deploy/nginx.conf


@dataclass
class Front:
    port: int  # https through nginx
    tokens: dict[str, str]


@contextmanager
def nginx_front(base: str, tokens: dict[str, str], worker_connections: int) -> Iterator[Front]:
    """Debian's nginx with the documented site file in front of the server at `base`."""
    with documented_nginx(int(base.rsplit(":", 1)[1]), worker_connections) as n:
        yield Front(n.port, tokens)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path_factory.mktemp("nginx-limits-home")
    tokens, *_rest = seed(home)
    proc, base = start_server(home)
    try:
        yield base, tokens
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def front(upstream: tuple[str, dict[str, str]]) -> Iterator[Front]:
    """nginx with the documented main setting (worker_connections 4096)."""
    with nginx_front(*upstream, worker_connections=4096) as f:
        yield f


TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate


def connect(front: Front, source: str, *, tls: bool = True) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", front.port), timeout=10, source_address=(source, 0)
    )
    return TLS.wrap_socket(sock) if tls else sock


def slow_upload(front: Front, source: str) -> socket.socket:
    """A busy connection: an upload whose body trickles (its head is in, 1 KB of 100 KB)."""
    sock = connect(front, source)
    sock.sendall(
        f"PUT /v1/users/{addr('oz')}/photo HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {front.tokens['admin']}\r\nContent-Type: image/jpeg\r\n"
        "Content-Length: 100000\r\n\r\n".encode()
        + b"\xff" * 1000
    )
    return sock


def status_within(sock: socket.socket, seconds: float) -> int | None:
    """The status nginx answers within `seconds`, or None while it still waits for more."""
    sock.settimeout(seconds)
    try:
        head = sock.recv(100)
    except (TimeoutError, ssl.SSLError):
        return None
    return int(head.split()[1]) if head.startswith(b"HTTP/") else None


def timed_get(front: Front, source: str) -> tuple[int, float]:
    started = time.perf_counter()
    with connect(front, source) as sock:
        sock.sendall(
            f"GET /v1/users/{addr('ada')}/photo?size=96 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {front.tokens['bob']}\r\nConnection: close\r\n\r\n".encode()
        )
        status = status_within(sock, 10)
    return status or 0, time.perf_counter() - started


def test_one_address_gets_503_beyond_its_cap_and_others_are_served(front: Front) -> None:
    held = [slow_upload(front, "127.0.0.2") for _ in range(PER_CLIENT)]
    try:
        assert {status_within(s, 0.05) for s in held} == {None}  # all in progress
        with slow_upload(front, "127.0.0.2") as extra:
            assert status_within(extra, 2) == 503  # at once, not a stall
        status, _seconds = timed_get(front, "127.0.0.3")
        assert status == 200
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with slow_upload(front, "127.0.0.2") as again:  # slots come back when clients go
        assert status_within(again, 0.3) is None


def test_a_new_client_is_served_fast_beside_1000_idle_and_512_busy(front: Front) -> None:
    timed_get(front, "127.0.0.99")  # the answer cached upstream, the TLS session warm
    idle: list[socket.socket] = []
    busy: list[socket.socket] = []
    try:
        for n in range(1000):  # connected, never a byte sent
            idle.append(connect(front, f"127.0.1.{1 + n % 200}", tls=False))
        for n in range(512):  # 16 addresses x 32: each within its own cap
            busy.append(slow_upload(front, f"127.0.2.{1 + n // PER_CLIENT}"))
        assert status_within(busy[-1], 0.2) is None  # in progress, not refused
        results = [timed_get(front, f"127.0.3.{n}") for n in range(1, 6)]
    finally:
        for sock in idle + busy:
            sock.close()
    assert {status for status, _ in results} == {200}, results
    seconds = sorted(s for _, s in results)
    assert seconds[len(seconds) // 2] < 0.1, seconds  # the median new client under 100 ms


def test_when_connections_run_short_idle_keep_alive_ones_are_closed_first(
    upstream: tuple[str, dict[str, str]],
) -> None:
    """nginx with room for 64 connections (upstream ones included) and 60 idle keep-alive
    clients: new clients are still served, and it is idle keep-alive connections that go."""
    with nginx_front(*upstream, worker_connections=64) as small:
        idle = []
        for n in range(60):
            sock = connect(small, f"127.0.4.{1 + n}")
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_within(sock, 5) == 200  # answered, and kept alive
            idle.append(sock)
        try:
            results = [timed_get(small, f"127.0.5.{n}") for n in range(1, 11)]
            assert {status for status, _ in results} == {200}, results
            time.sleep(0.3)  # the closing FINs arrive
            closed = sum(1 for sock in idle if _closed(sock))
            assert closed >= 1, "no idle keep-alive connection was closed to make room"
        finally:
            for sock in idle:
                sock.close()


def _closed(sock: ssl.SSLSocket) -> bool:
    """Whether nginx has closed this connection (what is left of its answer read first)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except (ssl.SSLWantReadError, BlockingIOError):
        return False  # open, nothing more to read
    except OSError:
        return True
    return True
