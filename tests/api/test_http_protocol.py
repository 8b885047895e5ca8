"""The HTTP server (granian) as configured by `userphoto serve`, over a raw socket: framing,
keep-alive, pipelining, 100-continue, limits. (What it answers is tested through the APIs in
test_serve*.py; hostile traffic in test_serve_hostile.py.)"""

from __future__ import annotations

import re
import socket

import pytest
from PIL import Image

from tests.support.images import encode
from tests.support.server import Served, addr


def talk(s: Served, data: bytes, *, once: bool = False, pause: bytes = b"") -> bytes:
    host, port = s.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        if pause:
            first = sock.recv(65536)
            sock.sendall(pause)
        else:
            first = b""
        chunks = [first]
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if once:
                break
        return b"".join(chunks)


def get(path: str, *extra: str, version: str = "1.1", close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: x", *extra]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    auth = f"Authorization: Bearer {served.tokens['bob']}"
    raw = talk(
        served,
        get(f"/v1/users/{addr('ada')}/photo?size=96", auth)
        + get("/healthz")  # through the ASGI site, between two hot answers
        + get(f"/v1/users/nobody@{addr('x').split('@')[1]}/photo", auth)
        + get(f"/v1/users/{addr('ada')}/photo?size=48", auth, close=True),
    )
    assert statuses(raw) == [200, 200, 404, 200]
    assert raw.count(b"date: ") == 4 and raw.endswith(b"\xff\xd9")  # the last JPEG, whole


def test_http_1_0_closes_unless_asked_to_keep_alive(served: Served) -> None:
    raw = talk(served, get("/healthz", version="1.0"))
    assert statuses(raw) == [200] and b"connection: keep-alive" not in raw
    raw = talk(
        served,
        get("/healthz", "Connection: keep-alive", version="1.0") + get("/healthz", close=True),
    )
    assert statuses(raw) == [200, 200] and b"connection: keep-alive" in raw


def test_expect_100_continue_upload(served: Served) -> None:
    jpeg = encode(Image.new("RGB", (300, 300), (10, 200, 30)), "JPEG")
    head = (
        f"PUT /v1/users/{addr('pam')}/photo HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {served.tokens['admin']}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {len(jpeg)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    raw = talk(served, head, pause=jpeg)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert statuses(raw)[-1] in (200, 201, 204)


def test_oversized_upload_is_refused_before_the_body(served: Served) -> None:
    head = (
        f"PUT /v1.0/users/{addr('pam')}/photo/$value HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {served.tokens['admin']}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    ).encode()
    raw = talk(served, head + b"\xff" * 1000)  # the rest never comes: the server answers now
    assert statuses(raw) == [413] and b"limit" in raw  # and `talk` saw the connection close


def test_malformed_and_oversized_heads(served: Served) -> None:
    assert statuses(talk(served, b"NONSENSE\r\n\r\n")) == [400]
    assert statuses(talk(served, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")) == [400]
    huge = get("/healthz", "X-Filler: " + "a" * 70_000)
    assert statuses(talk(served, huge)) == [431]
    upgrade = get("/healthz", "Connection: Upgrade", "Upgrade: websocket")
    raw = talk(served, upgrade, once=True)
    assert statuses(raw) == [200] and b"101" not in raw.split(b"\r\n")[0]  # upgrade ignored


def test_head_of_a_static_file_says_the_length_get_sends(served: Served) -> None:
    got = talk(served, get("/web/static/site.css", close=True))
    headed = talk(served, get("/web/static/site.css", close=True).replace(b"GET", b"HEAD", 1))
    _head, _, body = got.partition(b"\r\n\r\n")
    assert statuses(got) == statuses(headed) == [200] and len(body) > 10_000
    length = re.search(rb"content-length: (\d+)", headed)
    assert length and int(length[1]) == len(body), headed
    assert headed.endswith(b"\r\n\r\n")  # and no body


@pytest.mark.parametrize(
    "framing",
    [
        "Transfer-Encoding: identity, chunked",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: x",
    ],
)
@pytest.mark.parametrize("path", ["/healthz", f"/v1/users/{addr('ada')}/photo?size=48"])
def test_any_transfer_encoding_but_plain_chunked_is_refused(
    served: Served, framing: str, path: str
) -> None:
    """Smuggling bait: the body would hide a second request if the framing were read one way
    here and another way by a proxy. 400, and the connection ends (nothing after is read)."""
    smuggled = get("/healthz")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()
        + f"{len(smuggled):x}\r\n".encode()
        + smuggled
        + b"\r\n0\r\n\r\n"
        + get("/healthz")
    )
    raw = talk(served, request)
    assert statuses(raw) == [400], raw[:400]


def test_plain_chunked_bodies_still_work(served: Served) -> None:
    raw = talk(
        served,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + get("/healthz", close=True),
    )
    assert statuses(raw) == [200, 200]
