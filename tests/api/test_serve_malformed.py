"""Malformed requests at every route: always a specific 4xx, never a 500 (or a dropped socket)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.support.server import Served, addr

A = addr("ada")
JPEG = {"Content-Type": "image/jpeg"}

# (method, path, token, headers, body, expected status)
CASES: list[tuple[str, str, str | None, dict[str, str], bytes, int]] = [
    # native
    ("GET", f"/v1/users/{A}/photo?size=abc", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/photo?size=-1", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/photo?size=99999999999999999999999", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/photo?size=HR96x48", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/photo?size=100", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/photo?client=lync2010", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/photo?default=mp", "bob", {}, b"", 400),
    ("GET", "/v1/users/not@an@address/photo", "bob", {}, b"", 400),
    ("GET", "/v1/users/a b/photo", "bob", {}, b"", 400),
    ("GET", "/v1/users/" + "x" * 5000 + "/photo", "bob", {}, b"", 400),
    ("GET", "/v1/users//photo", "bob", {}, b"", 400),
    ("GET", f"/v1/users/{A}/elsewhere", "bob", {}, b"", 404),
    ("GET", f"/v1/users/{A}", "bob", {}, b"", 404),
    ("POST", f"/v1/users/{A}/photo", "bob", {}, b"x", 405),
    ("PUT", f"/v1/users/{A}/photo/meta", "admin", {}, b"x", 405),
    ("PUT", f"/v1/users/{A}/photo", None, {}, b"x", 401),
    ("PUT", f"/v1/users/{A}/photo", "admin", {}, b"not an image at all", 415),
    ("PUT", f"/v1/users/{A}/photo", "admin", {}, b"\xff\xd8\xff\xe0garbage", 422),
    ("DELETE", f"/v1/users/{addr('zed')}/photo", "admin", {}, b"", 404),
    ("DELETE", f"/v1/users/{addr('max')}/photo", "admin", {}, b"", 404),
    # Graph
    ("GET", "/v1.0/users", "bob", {}, b"", 400),
    ("GET", "/v1.0/", "bob", {}, b"", 400),
    ("GET", f"/v1.0/users/{A}/photo/$bogus", "bob", {}, b"", 400),
    ("GET", f"/v1.0/users/{A}/photos/x", "bob", {}, b"", 400),
    ("GET", f"/v1.0/users/{A}/photos/96x96/$value/more", "bob", {}, b"", 400),
    ("GET", f"/v1.0/users/{A}/photos/0x0", "bob", {}, b"", 400),
    ("GET", "/v1.0/users/%00/photo", "bob", {}, b"", 400),
    ("GET", "/v1.0/me/photo", "admin", {}, b"", 403),
    ("POST", f"/v1.0/users/{A}/photo/$value", "admin", {}, b"x", 405),
    ("PUT", f"/v1.0/users/{A}/photo", "admin", JPEG, b"x", 405),
    ("DELETE", f"/v1.0/users/{A}/photos", "admin", {}, b"", 405),
    ("PUT", f"/v1.0/users/{A}/photo/$value", "admin", {}, b"x", 415),
    (
        "PUT",
        f"/v1.0/users/{A}/photo/$value",
        "admin",
        {"Content-Type": "image/png"},
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
        422,
    ),
    ("PUT", "/v1.0/me/photo/$value", None, JPEG, b"x", 401),
    # EWS
    ("GET", "/ews/Exchange.asmx/s/GetUserPhoto", "bob", {}, b"", 400),
    ("GET", "/ews/Exchange.asmx/s/GetUserPhoto?email=", "bob", {}, b"", 400),
    ("GET", "/ews/Exchange.asmx/s/GetUserPhoto?email=nope&size=HR48x48", "bob", {}, b"", 400),
    ("GET", f"/ews/Exchange.asmx/s/GetUserPhoto?email={A}&size=HR0x0", "bob", {}, b"", 400),
    ("GET", f"/ews/Exchange.asmx/s/GetUserPhoto?email={A}&size=big", "bob", {}, b"", 400),
    ("GET", "/ews/other", "bob", {}, b"", 404),
    ("POST", f"/ews/Exchange.asmx/s/GetUserPhoto?email={A}", "bob", {}, b"x", 405),
    # Libravatar
    ("GET", "/avatar/", None, {}, b"", 400),
    ("GET", "/avatar/xyz", None, {}, b"", 400),
    ("GET", "/avatar/" + "g" * 32, None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 33, None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 32 + "?s=0", None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 32 + "?s=2049", None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 32 + "?s=1e3", None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 32 + "?d=javascript:alert(1)", None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 32 + "?d=https://evil.example/", None, {}, b"", 400),
    ("GET", "/avatar/" + "a" * 32 + "/extra", None, {}, b"", 400),
    (
        "GET",
        "/avatar/" + "a" * 32 + "?d=https://static.contoso.test/avatars/%0d%0aX:%20y",
        None,
        {},
        b"",
        400,
    ),
    ("DELETE", "/avatar/" + "a" * 32, "admin", {}, b"", 405),
    # auth on any route
    ("GET", f"/v1/users/{A}/photo", "upt_wrong", {}, b"", 401),
    ("GET", f"/v1.0/users/{A}/photo", "x.y.z", {}, b"", 401),
    ("GET", "/avatar/" + "a" * 32, "a.b", {}, b"", 401),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]} {c[1][:60]}")
def test_malformed_request_gets_its_specific_4xx(served: Served, case) -> None:
    method, path, who, headers, body, expected = case
    r = served.request(method, path, who, headers=headers, content=body or None)
    assert r.status_code == expected, (r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/json"):
        assert r.json()["error"]["message"]


def raw(served: Served, request: bytes) -> bytes:
    """Send bytes exactly as given (no client-side normalization) and read the status line."""
    parts = urlsplit(served.base)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/users/%ff%fe/photo",
        b"/v1/users/" + A.encode() + b"/photo?size=%ff",
        b"/v1.0/users/%C0%AF/photo/$value",
        b"/v1.0/users/" + A.encode() + b"/photos/%2e%2e/$value",
        b"/ews/Exchange.asmx/s/GetUserPhoto?email=%ff%40x.test&size=HR48x48",
        b"/avatar/%ff%ff?d=%ff",
        b"/avatar/" + b"a" * 32 + b"?name=%ff&d=initials",
        b"/v1/users/%00@x.test/photo",
    ],
)
def test_raw_bytes_paths_never_500(served: Served, target: bytes) -> None:
    status = raw(served, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    code = int(status.split()[1])
    assert 200 <= code < 500, status


def test_declared_oversize_body_is_413_before_it_is_sent(served: Served) -> None:
    token = served.tokens["admin"].encode()
    status = raw(
        served,
        b"PUT /v1.0/users/" + A.encode() + b"/photo/$value HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + token + b"\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 999999999\r\n\r\n",
    )
    assert status.split()[1] == b"413"


def test_unparseable_content_length_is_a_4xx(served: Served) -> None:
    token = served.tokens["admin"].encode()
    status = raw(
        served,
        b"PUT /v1/users/" + A.encode() + b"/photo HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + token + b"\r\nContent-Length: abc\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status.split()[1].startswith(b"4"), status
