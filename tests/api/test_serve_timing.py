"""No enumeration by timing: an outsider's cache miss for a hidden user and for an unknown
address get the same answer at the same moment. A hidden user's miss does more work (the
user is read and the rule runs), so outsiders' misses are answered on a 5 ms grid from their
start; bench/hidden_timing.py measures how well a client can still tell them apart."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.server import Served, addr, serving

GRID = 0.005  # userphoto.api.server.OUTSIDE_MISS_GRID


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server of its own: every key below is asked here for the first time."""
    with serving(tmp_path_factory.mktemp("timing-home")) as served:
        yield served


def timed(sock: socket.socket, target: str) -> tuple[bytes, float]:
    """(the answer without its Date and X-Request-Id headers, seconds) for one anonymous GET."""
    started = time.perf_counter()
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    took = time.perf_counter() - started
    varying = (b"date:", b"x-request-id:")  # differ per request, whoever is asked about
    kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(varying)]
    return b"\r\n".join(kept) + body, took


def test_outsiders_misses_for_hidden_and_unknown_users_take_the_same_grid_step(
    fresh: Served,
) -> None:
    host, port = fresh.base.removeprefix("http://").split(":")
    hidden = [f"/v1/users/{addr('lee')}/photo?size={s}" for s in (48, 64, 96, 120, 240)]
    unknown = [f"/v1/users/{addr(f'nobody{s}')}/photo?size={s}" for s in (48, 64, 96, 120, 240)]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        answers = {timed(sock, target)[0] for target in hidden + unknown}
        assert len(answers) == 1, answers  # one answer for all (no enumeration)
        for sizes in (hidden, unknown):
            for target in sizes:
                again, _ = timed(sock, target.replace("size=", "default=404&size="))
                assert again in answers
        # First requests of new keys: each answered no sooner than one grid step (the loop's
        # clock counts whole milliseconds, so a step can start up to 1 ms before the request).
        firsts = [
            timed(sock, f"/v1/users/{who}/photo?size=648&client={client}")[1]
            for who in (addr("lee"), addr("nobody-else"))
            for client in ("hd", "web", "legacy")
        ]
    assert min(firsts) >= GRID - 0.0011, firsts
