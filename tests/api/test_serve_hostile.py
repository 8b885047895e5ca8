"""`userphoto serve` under awkward and hostile clients, over raw sockets (no client library
smoothing anything over): one test per problem seen on the old home-made HTTP server.

A server of its own (`hostile`) runs with short timeouts so slow clients can be shown to be
cut off; memory cases read the server's resident size (every process of its group) from
/proc before and after, and assert the growth is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.images import noise_jpeg
from tests.support.server import ALLOWED_DEFAULT, Served, addr, seed, start_server, stop_server

HEADER_TIMEOUT = 1  # s, [server] header_timeout of the `hostile` server
BODY_TIMEOUT = 2  # s, [server] body_timeout
MAX_BYTES = 4 * 1024 * 1024  # the default [limits] max_bytes


@dataclass
class Hostile:
    served: Served
    proc: object
    host: str
    port: int

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def rss_mb(self) -> float:
        return group_rss_mb(self.proc.pid)  # type: ignore[attr-defined]

    def metrics(self) -> dict[str, float]:
        text = httpx.get(self.served.base + "/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if line.startswith("userphoto_") and "{" not in line:
                name, _, value = line.partition(" ")
                out[name] = float(value)
        return out


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in one process group (granian's supervisor and its
    worker), in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, ValueError):
            continue
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(m[1]) if m else 0
    return total / 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    from tests.support.server import Served

    home = tmp_path_factory.mktemp("hostile-home")
    tokens, secret, rsa_key, ec_key, ids = seed(home)
    proc, base = start_server(
        home,
        {
            "USERPHOTO_SERVER_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "USERPHOTO_SERVER_BODY_TIMEOUT": str(BODY_TIMEOUT),
        },
    )
    served = Served(base, home, tokens, secret, rsa_key, ec_key, ids)
    host, port = base.removeprefix("http://").split(":")
    try:
        yield Hostile(served, proc, host, int(port))
    finally:
        served.client.close()
        if proc.poll() is None:  # the SIGTERM test stops it itself
            stop_server(proc)


def read_until(sock: socket.socket, marker: bytes, limit: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + limit
    while marker not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


def responses(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Split a stream of HTTP/1.1 responses by their own framing (Content-Length or none)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out


def put_request(who_token: str | None, target: str, body: bytes, *extra: str) -> bytes:
    lines = [
        f"PUT {target} HTTP/1.1",
        "Host: photos.test",
        "Content-Type: image/jpeg",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    if who_token is not None:
        lines.append(f"Authorization: Bearer {who_token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- 431 for curl-style uploads ---------------------------------------------------------------
@pytest.mark.parametrize("side", [240, 930, 1800], ids=["64KB", "1MB", "4MB"])
def test_single_write_uploads_get_401_for_a_bad_token_and_200_for_a_good_one(
    hostile: Hostile, side: int
) -> None:
    """curl writes the head and the first body bytes together; every size must be read as a
    request, not as an oversized head (the old server said 431 to all of these)."""
    body = noise_jpeg(side)
    assert 64 * 1024 <= len(body) < MAX_BYTES
    target = f"/v1.0/users/{addr('oz')}/photo/$value"
    for token, expected in (
        ("upt_garbage", 401),
        (None, 401),
        (hostile.served.tokens["admin"], 200),
    ):
        with hostile.connect(timeout=60) as sock:
            sock.sendall(put_request(token, target, body, "Connection: close"))
            raw = read_all(sock)
        assert statuses(raw)[:1] == [expected], (token is None, raw[:300])


# --- framing ----------------------------------------------------------------------------------
def test_100_continue_comes_after_the_previous_pipelined_response(hostile: Hostile) -> None:
    body = noise_jpeg(200)
    target = f"/v1/users/{addr('oz')}/photo"
    head = put_request(
        hostile.served.tokens["admin"], target, b"", "Expect: 100-continue", "Connection: close"
    ).replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    first = b"GET /healthz HTTP/1.1\r\nHost: photos.test\r\n\r\n"
    with hostile.connect(timeout=30) as sock:
        sock.sendall(first + head)
        got = read_until(sock, b"100 Continue")
        assert b"100 Continue" in got
        assert got.index(b"HTTP/1.1 200") < got.index(b"100 Continue"), got[:400]
        sock.sendall(body)
        raw = got + read_all(sock)
    assert statuses(raw) == [200, 100, 200]


def test_204_304_and_head_are_framed_without_a_body(hostile: Hostile) -> None:
    s = hostile.served
    admin = s.tokens["admin"]
    photo = f"/v1/users/{addr('ada')}/photo?size=96"
    etag = s.get(photo, "admin").headers["etag"]
    delete_target = f"/v1.0/users/{addr('kim')}/photo"
    assert s.request(
        "PUT",
        delete_target + "/$value",
        "admin",
        content=noise_jpeg(120),
        headers={"Content-Type": "image/jpeg"},
    ).status_code in (
        200,
        204,
    )
    pipeline = (
        f"HEAD {photo} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
        f"GET {photo} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n"
        f"If-None-Match: {etag}\r\n\r\n"
        f"DELETE {delete_target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
        f"GET {photo} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with hostile.connect() as sock:
        sock.sendall(pipeline)
        raw = read_all(sock)
    (h_status, h_head, h_body), (n_status, _n_head, n_body), (d_status, d_head, d_body), last = (
        _framed(raw)
    )
    assert (h_status, n_status, d_status, last[0]) == (200, 304, 204, 200)
    assert int(h_head[b"content-length"]) == len(last[2]) and h_body == b""  # HEAD: GET's length
    assert n_body == b"" and d_body == b""
    assert b"content-length" not in d_head  # RFC 9110 §8.6: never on a 204
    assert last[2].startswith(b"\xff\xd8") and last[2].endswith(b"\xff\xd9")


def _framed(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Like `responses`, knowing HEAD/304/204 carry no body whatever their headers say."""
    out = []
    bodiless = 3  # the first three answers of the pipeline above
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if len(out) < bodiless else int(headers.get(b"content-length", b"0"))
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    # The first three must not have carried bytes: the fourth answer starts right after them.
    return out


def test_host_is_required_exactly_once(hostile: Hostile) -> None:
    photo = f"/avatar/{'a' * 32}?d=mp"
    for extra, expected in (("", 400), ("Host: a\r\nHost: b\r\n", 400), ("Host: a\r\n", 200)):
        with hostile.connect() as sock:
            sock.sendall(f"GET {photo} HTTP/1.1\r\n{extra}Connection: close\r\n\r\n".encode())
            assert statuses(read_all(sock))[:1] == [expected], extra


def test_duplicate_authorization_headers_are_read_one_way_everywhere(hostile: Hostile) -> None:
    """The first value counts, on the photo hot path and on every other route alike."""
    good = f"Authorization: Bearer {hostile.served.tokens['bob']}\r\n"
    bad = "Authorization: Bearer upt_not_a_token\r\n"
    for path in (f"/v1/users/{addr('ada')}/photo?size=48", "/v1/whoami"):
        for first, second, expected in ((bad, good, 401), (good, bad, 200)):
            for _ in range(2):  # the second time the credential is remembered: same answer
                with hostile.connect() as sock:
                    sock.sendall(
                        f"GET {path} HTTP/1.1\r\nHost: x\r\n{first}{second}"
                        "Connection: close\r\n\r\n".encode()
                    )
                    assert statuses(read_all(sock))[:1] == [expected], (path, first)


def test_a_put_followed_by_junk_is_answered_for_what_it_did(hostile: Hostile) -> None:
    """The upload is committed and answered 200; the junk after it gets its own 400."""
    body = noise_jpeg(150)
    target = f"/v1/users/{addr('oz')}/photo"
    with hostile.connect(timeout=30) as sock:
        sock.sendall(
            put_request(hostile.served.tokens["admin"], target, body) + b"JUNK JUNK\r\n\r\n"
        )
        raw = read_all(sock)
    codes = statuses(raw)
    assert codes[0] == 200 and codes[1:] in ([], [400]), raw[:300]


# --- slow and vanishing clients ---------------------------------------------------------------
def test_a_slow_request_head_is_cut_off(hostile: Hostile) -> None:
    with hostile.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        raw = read_all(sock)
        waited = time.monotonic() - started
    assert waited < HEADER_TIMEOUT + 5, waited
    assert statuses(raw) in ([], [408], [400])  # closed, with or without a word


def test_a_slow_upload_body_times_out_and_changes_nothing(hostile: Hostile) -> None:
    s = hostile.served
    photo = f"/v1/users/{addr('oz')}/photo?size=96"
    before = s.get(photo, "admin").headers["etag"]
    body = noise_jpeg(300)
    with hostile.connect(timeout=30) as sock:
        sock.sendall(put_request(s.tokens["admin"], photo, body)[: -len(body) // 2])
        started = time.monotonic()
        raw = read_all(sock)
        waited = time.monotonic() - started
    assert waited < BODY_TIMEOUT + 5, waited
    assert statuses(raw)[:1] in ([], [408])
    assert s.get(photo, "admin").headers["etag"] == before


def test_a_client_that_aborts_an_upload_changes_nothing(hostile: Hostile) -> None:
    s = hostile.served
    photo = f"/v1/users/{addr('oz')}/photo?size=96"
    before = s.get(photo, "admin").headers["etag"]
    body = noise_jpeg(300)
    for _ in range(5):
        sock = hostile.connect()
        sock.sendall(put_request(s.tokens["admin"], photo, body)[: -len(body) // 2])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST mid-body
    time.sleep(0.5)
    assert s.get(photo, "admin").headers["etag"] == before
    assert httpx.get(s.base + "/healthz", timeout=5).status_code == 200


# --- memory -----------------------------------------------------------------------------------
def big_answer(hostile: Hostile) -> tuple[str, str]:
    """A ~240 KB photo answer (noise at 648 px) and the header asking for it as a member."""
    s = hostile.served
    target = f"/v1/users/{addr('max')}/photo?size=648"
    if len(s.get(target, "bob").content) < 200_000:  # its initials picture until then
        r = s.request(
            "PUT",
            f"/v1/users/{addr('max')}/photo",
            "admin",
            content=noise_jpeg(900),
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
    got = s.get(target, "bob")
    assert got.status_code == 200 and len(got.content) > 200_000, len(got.content)
    return target, f"Bearer {s.tokens['bob']}"


def settled_rss_mb(hostile: Hostile) -> float:
    """The whole tree's RSS once the image workers have started (/readyz waits for them:
    their start-up is not the growth being measured)."""
    deadline = time.monotonic() + 30
    while httpx.get(hostile.served.base + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "not ready"
        time.sleep(0.2)
    return hostile.rss_mb()


def stuff(sock: socket.socket, payload: bytes, seconds: float = 5) -> int:
    """Send what the server takes within `seconds`, never reading; returns bytes sent."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            sent += sock.send(payload[sent : sent + 65536])
        except BlockingIOError:
            time.sleep(0.02)
        except OSError:  # the server closed it: as good as stopping to read it
            break
    return sent


def test_a_pipelining_client_that_never_reads_cannot_grow_the_server(hostile: Hostile) -> None:
    """6,000 pipelined GETs of a 240 KB answer on each of 3 connections, none read: the
    server writes one answer, then stops reading that client (write back-pressure) instead
    of queueing 6,000 answers; the whole process tree (workers included) stays put."""
    target, auth = big_answer(hostile)
    before = settled_rss_mb(hostile)
    one = f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode()
    socks = []
    try:
        for _ in range(3):
            sock = hostile.connect()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuff(sock, one * 6000, seconds=3)
            socks.append(sock)
        time.sleep(1)
        grown = hostile.rss_mb() - before
    finally:
        for sock in socks:
            sock.close()
    assert grown < 40, f"server tree RSS grew {grown:.0f} MB"
    assert httpx.get(hostile.served.base + "/healthz", timeout=5).status_code == 200


def h2_streams(hostile: Hostile, target: str, auth: str, streams: int) -> socket.socket:
    """An HTTP/2 client (h2c, prior knowledge) that opens `streams` GETs, grants the server
    an unlimited flow-control window, and never reads a byte."""
    import h2.config
    import h2.connection
    import h2.settings

    sock = hostile.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    conn.increment_flow_control_window(2**31 - 1 - 65535)
    head = [(":method", "GET"), (":path", target), (":scheme", "http"), (":authority", "x")]
    for n in range(streams):
        conn.send_headers(1 + 2 * n, [*head, ("authorization", auth)], end_stream=True)
    stuff(sock, conn.data_to_send(), seconds=3)
    return sock


def test_an_http2_client_that_never_reads_holds_a_bounded_number_of_answers(
    hostile: Hostile,
) -> None:
    """200 streams of a 240 KB answer on each of 3 h2c connections, none read: the server
    allows 16 streams per connection (granian's default, 200, held +49 MB a connection).
    Twice: what the first round took is reused by the second, not added to."""
    target, auth = big_answer(hostile)
    before = settled_rss_mb(hostile)
    grown = []
    for _round in range(2):
        socks = []
        try:
            for _ in range(3):
                socks.append(h2_streams(hostile, target, auth, 200))
            time.sleep(2)
            grown.append(hostile.rss_mb() - before)
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.5)
    assert grown[0] < 40, f"server tree RSS grew {grown[0]:.0f} MB"
    assert grown[1] - grown[0] < 10, f"the second round added {grown[1] - grown[0]:.0f} MB"
    assert httpx.get(hostile.served.base + "/healthz", timeout=5).status_code == 200


def test_junk_query_floods_and_padded_tokens_add_no_cache_memory(hostile: Hostile) -> None:
    """1,500 GETs with 60 KB junk queries, then 1,500 with a member token padded with spaces:
    the cache key is built from known parameters and credentials from their normalized
    value, so neither the answer cache nor the server's memory grows with them."""
    s = hostile.served
    photo = f"/v1/users/{addr('ada')}/photo"
    token = s.tokens["bob"]
    assert s.get(photo + "?size=64", "bob").status_code == 200
    before, rss = hostile.metrics(), hostile.rss_mb()
    for batch in range(15):
        with hostile.connect(timeout=30) as sock:
            reqs = b"".join(
                f"GET {photo}?size=64&junk{batch}x{n}={'j' * 60_000} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
                for n in range(100)
            )
            sock.sendall(reqs + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(sock)) == [200] * 101
    for batch in range(15):
        with hostile.connect(timeout=30) as sock:
            reqs = b"".join(
                f"GET {photo}?size=64 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {' ' * (batch * 100 + n) * 20}{token}   \r\n\r\n".encode()
                for n in range(100)
            )
            sock.sendall(reqs + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(sock)) == [200] * 101
    after = hostile.metrics()
    assert after["userphoto_cache_bytes"] == before["userphoto_cache_bytes"]
    assert after["userphoto_cache_entries"] == before["userphoto_cache_entries"]
    assert hostile.rss_mb() - rss < 40


def test_unauthenticated_upload_bodies_are_refused_before_they_are_read(hostile: Hostile) -> None:
    """40 anonymous 4 MB uploads, each stopping after its head and 64 KB: each is answered
    401 at once (nobody waits for the rest), and no body is held."""
    rss = hostile.rss_mb()
    target = f"/v1/users/{addr('oz')}/photo"
    socks = []
    try:
        for _ in range(40):
            sock = hostile.connect()
            head = (
                f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {MAX_BYTES - 1}\r\n\r\n"
            ).encode()
            sock.sendall(head + b"\xff" * 65536)
            socks.append(sock)
        for sock in socks:
            assert statuses(read_until(sock, b"\r\n\r\n", limit=5))[:1] == [401]
        assert hostile.rss_mb() - rss < 40
    finally:
        for sock in socks:
            sock.close()


# --- redirects --------------------------------------------------------------------------------
def test_default_url_allow_compares_parsed_urls(hostile: Hostile) -> None:
    s = hostile.served
    base = ALLOWED_DEFAULT.rstrip("/")  # https://static.contoso.test/avatars
    host = base.split("/")[2]
    for url, expected in (
        (f"{ALLOWED_DEFAULT}x.png", 302),
        (f"https://{host}.evil.net/avatars/x.png", 400),
        (f"https://{host}@evil.net/avatars/x.png", 400),
        (f"http://{host}/avatars/x.png", 400),
        (f"https://{host}/avatarsX/x.png", 400),
        (f"https://{host}:8443/avatars/x.png", 400),
    ):
        r = s.client.get(f"/avatar/{'c' * 32}", params={"d": url})
        assert r.status_code == expected, url


# --- supervision ------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_a_worker_that_dies_is_replaced(hostile: Hostile) -> None:
    (worker,) = children(hostile.proc.pid)  # type: ignore[attr-defined]
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(hostile.served.base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "no worker came back"
        time.sleep(0.2)
    assert children(hostile.proc.pid) not in ([], [worker])  # type: ignore[attr-defined]
    photo = hostile.served.get(f"/v1/users/{addr('ada')}/photo?size=48", "bob")
    assert photo.status_code == 200


# --- shutdown (last: it stops the module's server) ----------------------------------------------
def test_sigterm_lets_in_flight_requests_finish(hostile: Hostile) -> None:
    s = hostile.served
    body = noise_jpeg(300)
    target = f"/v1/users/{addr('oz')}/photo"
    request = put_request(s.tokens["admin"], target, body, "Connection: close")
    with hostile.connect(timeout=30) as sock:
        sock.sendall(request[: -len(body) // 2])
        time.sleep(0.3)
        os.kill(hostile.proc.pid, signal.SIGTERM)  # type: ignore[attr-defined]
        time.sleep(0.3)
        sock.sendall(request[-len(body) // 2 :])
        raw = read_all(sock)
    assert statuses(raw)[:1] == [200], raw[:300]
    assert json.loads(responses(raw)[0][2])  # the whole answer arrived
    hostile.proc.wait(15)  # type: ignore[attr-defined]
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.base + "/healthz", timeout=2)


def test_connections_beyond_the_cap_wait_to_be_accepted(tmp_path: Path) -> None:
    """[server] max_connections: with the cap's worth of connections open, another client is
    not served until one of them goes (it waits in the listen backlog, costing nothing)."""
    from userphoto.app import App
    from userphoto.config import Settings

    App(Settings.load(tmp_path)).settings.write_default()
    proc, base = start_server(tmp_path, {"USERPHOTO_SERVER_MAX_CONNECTIONS": "2"})
    host, port = base.removeprefix("http://").split(":")
    ping = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    held = []
    try:
        for _ in range(2):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(ping)
            assert statuses(read_until(sock, b"}")) == [200]
            held.append(sock)
        extra = socket.create_connection((host, int(port)), timeout=5)
        extra.sendall(ping)
        extra.settimeout(0.8)
        with pytest.raises(TimeoutError):
            extra.recv(100)  # not served while the cap is reached
        held.pop().close()
        extra.settimeout(5)
        assert statuses(read_until(extra, b"}")) == [200]  # served once a slot is free
        extra.close()
    finally:
        for sock in held:
            sock.close()
        stop_server(proc)
