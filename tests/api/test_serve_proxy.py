"""Behind a reverse proxy, over real sockets: `[server] trusted_proxies` decides whose
X-Forwarded-* / Forwarded headers are believed, and request ids travel with every answer.

One server trusts 127.0.0.2 only. The test speaks from 127.0.0.1 (a client that may lie)
and from 127.0.0.2 (the proxy), by binding its connections' source address."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Served, addr, serve_log, serving

PROXY = "127.0.0.2"


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("proxied")
    with serving(home, {"USERPHOTO_SERVER_TRUSTED_PROXIES": f'["{PROXY}/32"]'}) as s:
        yield s


def client(served: Served, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=served.base, transport=transport, timeout=10)


def logged(home: Path, request_id: str) -> dict:
    """The access-log line of the request with this id (waiting for the flush)."""
    deadline = time.monotonic() + 5
    while True:
        for line in serve_log(home).read_text().splitlines():
            if line.startswith("{") and f'"request_id":"{request_id}"' in line:
                entry = json.loads(line)
                if "route" in entry:
                    return entry
        assert time.monotonic() < deadline, f"no access-log line for {request_id}"
        time.sleep(0.1)


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(behind: Served) -> None:
    photo = f"/v1/users/{addr('ada')}/photo"
    with client(behind, "127.0.0.1") as direct:
        answer = direct.get(
            photo,
            headers={
                **behind.headers("bob"),
                "X-Forwarded-For": "203.0.113.9",
                "Forwarded": "for=198.51.100.7;proto=https",
                "X-Request-Id": "spoof-1",
            },
        )
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "spoof-1"
        page = direct.get("/signin", headers={"X-Forwarded-Proto": "https"})
        assert page.status_code == 200
        assert "secure" not in page.headers["set-cookie"].lower()
    line = logged(behind.home, "spoof-1")
    assert line["client"] == "127.0.0.1"
    assert line["viewer"] == "member" and line["viewer_id"] == behind.ids["bob"]
    assert line["user"] == behind.ids["ada"]


def test_a_trusted_proxy_names_the_client_scheme_and_host(behind: Served) -> None:
    photo = f"/v1/users/{addr('ada')}/photo"
    with client(behind, PROXY) as proxy:
        # The client's own header says 10.9.9.9; the proxy appended the address it saw.
        answer = proxy.get(
            photo,
            headers={
                **behind.headers("bob"),
                "X-Forwarded-For": "10.9.9.9, 203.0.113.9",
                "X-Request-Id": "via-proxy-1",
            },
        )
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "via-proxy-1"
        rfc = proxy.get(
            "/v1/whoami",
            headers={
                **behind.headers("kim"),
                "Forwarded": 'for=192.0.2.1, for="[2001:db8::17]:4711";proto=https',
                "X-Request-Id": "via-proxy-2",
            },
        )
        assert rfc.status_code == 200
        page = proxy.get(
            "/signin",
            headers={
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "photos.example.org",
                "X-Forwarded-For": "203.0.113.9",
            },
        )
        assert page.status_code == 200
        assert "secure" in page.headers["set-cookie"].lower()  # the public URL is https
        # /metrics judges the client, not the proxy: an outside client is refused ...
        outside = proxy.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert outside.status_code in (401, 403)
        # ... and the proxy itself (loopback, in metrics_allow) may read it.
        assert proxy.get("/metrics").status_code == 200
    line = logged(behind.home, "via-proxy-1")
    assert line["client"] == "203.0.113.9"  # the rightmost untrusted hop, not the spoofable one
    whoami = logged(behind.home, "via-proxy-2")
    assert whoami["client"] == "2001:db8::17"
    assert whoami["route"] == "/v1/whoami" and whoami["viewer_id"] == behind.ids["kim"]


def test_request_ids_are_cleaned_or_made(behind: Served) -> None:
    with client(behind, "127.0.0.1") as direct:
        made = direct.get("/healthz")
        hostile = direct.get("/healthz", headers={"X-Request-Id": 'a"b\\c d' + "x" * 300})
        unknown = direct.get("/no/such/page", headers={"X-Request-Id": "missing-1"})
    assert re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", made.headers["x-request-id"])
    cleaned = hostile.headers["x-request-id"]
    assert cleaned.startswith("abcdx") and len(cleaned) == 128
    assert unknown.status_code == 404 and unknown.headers["x-request-id"] == "missing-1"
    assert logged(behind.home, cleaned)["route"] == "/healthz"
    assert logged(behind.home, "missing-1")["status"] == 404


def test_web_pages_log_the_signed_in_viewer(behind: Served) -> None:
    with client(behind, "127.0.0.1") as browser:
        page = browser.get("/signin")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert csrf is not None
        signed = browser.post(
            "/signin", data={"csrf": csrf.group(1), "token": behind.tokens["kim"], "next": "/"}
        )
        assert signed.status_code == 303
        me = browser.get("/me", headers={"X-Request-Id": "web-me-1"})
        assert me.status_code == 200
    line = logged(behind.home, "web-me-1")
    assert line["viewer"] == "member" and line["viewer_id"] == behind.ids["kim"]
    assert line["route"] == "/me" and line["client"] == "127.0.0.1"
