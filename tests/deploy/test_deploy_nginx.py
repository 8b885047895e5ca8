"""docs/deploy/nginx.conf in front of a real `userphoto serve`: Debian's nginx started from the
documented file (only addresses, ports and paths rewritten for the test), uploads with curl and
httpx through it, GETs, the public avatar cache, and the limits nginx enforces."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.images import noise_jpeg
from tests.support.nginx import documented_nginx
from tests.support.server import addr, seed, serve_log, start_server, stop_server


@dataclass
class Front:
    base: str  # https through nginx
    plain: str  # the port-80 server block
    cert: Path
    tokens: dict[str, str]
    tmp: Path
    home: Path  # userphoto's data folder (its log: serve.log)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    home = tmp_path_factory.mktemp("nginx-home")
    tokens, *_rest = seed(home)
    # As documented: userphoto believes the forwarded headers of the proxy on loopback.
    proc, base = start_server(home, {"USERPHOTO_SERVER_TRUSTED_PROXIES": '["127.0.0.1/32"]'})
    try:
        with documented_nginx(int(base.rsplit(":", 1)[1])) as n:
            yield Front(n.url, n.plain, n.cert, tokens, n.tmp, home)
    finally:
        stop_server(proc)


def test_curl_uploads_through_nginx_and_the_photo_comes_back(front: Front, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(noise_jpeg(700))  # ~0.4 MB, in one --data-binary like the field report
    target = f"{front.base}/v1.0/users/{addr('oz')}/photo/$value"
    curl = ["curl", "-sS", "--cacert", str(front.cert), "-o", "/dev/null", "-w", "%{http_code}"]
    put = ["-X", "PUT", "--data-binary", f"@{photo}", "-H", "Content-Type: image/jpeg"]
    out = subprocess.run(
        [*curl, *put, "-H", f"Authorization: Bearer {front.tokens['admin']}", target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout in ("200", "204"), out.stderr
    bad = subprocess.run(
        [*curl, *put, "-H", "Authorization: Bearer upt_garbage", target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.stdout == "401", bad.stderr
    with httpx.Client(verify=str(front.cert), timeout=30) as client:
        got = client.get(
            f"{front.base}/v1/users/{addr('oz')}/photo?size=240",
            headers={"Authorization": f"Bearer {front.tokens['bob']}"},
        )
    assert got.status_code == 200 and got.content.startswith(b"\xff\xd8")


def test_httpx_uploads_over_http2_and_http1(front: Front) -> None:
    body = noise_jpeg(500)
    headers = {"Authorization": f"Bearer {front.tokens['admin']}", "Content-Type": "image/jpeg"}
    for http2 in (False, True):
        with httpx.Client(verify=str(front.cert), timeout=60, http2=http2) as client:
            r = client.put(
                f"{front.base}/v1/users/{addr('pam')}/photo", content=body, headers=headers
            )
            assert r.status_code == 200, r.text[:200]
            assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


def test_public_avatars_are_cached_by_nginx_and_private_answers_are_not(front: Front) -> None:
    url = f"{front.base}/avatar/{'d' * 32}?d=identicon&s=64"
    with httpx.Client(verify=str(front.cert), timeout=10) as client:
        first = client.get(url)
        second = client.get(url)
        private = client.get(url, headers={"Authorization": f"Bearer {front.tokens['bob']}"})
    assert first.status_code == second.status_code == private.status_code == 200
    assert first.headers["x-cache"] in ("MISS", "EXPIRED")
    assert second.headers["x-cache"] == "HIT" and second.content == first.content
    assert private.headers["x-cache"] == "BYPASS"
    assert private.headers["cache-control"].startswith("private")


def test_nginx_refuses_oversized_uploads_and_redirects_plain_http(front: Front) -> None:
    headers = {"Authorization": f"Bearer {front.tokens['admin']}", "Content-Type": "image/jpeg"}
    with httpx.Client(verify=str(front.cert), timeout=30) as client:
        r = client.put(
            f"{front.base}/v1/users/{addr('pam')}/photo",
            content=b"\xff" * (5 << 20),
            headers=headers,
        )
    assert r.status_code == 413
    plain = httpx.get(front.plain + "/healthz", timeout=5)
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")


def test_the_access_log_leaves_query_strings_out(front: Front) -> None:
    with httpx.Client(verify=str(front.cert), timeout=10) as client:
        client.get(f"{front.base}/avatar/{'e' * 32}?d=mp&sig=SECRET-SIGNATURE")
    time.sleep(0.2)
    log = (front.tmp / "access.log").read_text()
    assert "/avatar/" in log and "SECRET-SIGNATURE" not in log


def test_userphoto_sees_the_client_scheme_and_request_id_nginx_forwards(front: Front) -> None:
    """The client connects from 127.0.0.2; nginx (on 127.0.0.1, a trusted proxy) forwards its
    address, https and its request id, and keeps /metrics to loopback."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=str(front.cert))
    with httpx.Client(transport=transport, timeout=10) as client:
        photo = client.get(
            f"{front.base}/v1/users/{addr('ada')}/photo?size=64",
            headers={"Authorization": f"Bearer {front.tokens['bob']}"},
        )
        page = client.get(f"{front.base}/signin")
        metrics = client.get(f"{front.base}/metrics")
    assert photo.status_code == 200 and page.status_code == 200
    assert "secure" in page.headers["set-cookie"].lower()  # userphoto saw https
    assert metrics.status_code == 403  # nginx: not from loopback
    request_id = photo.headers["x-request-id"]  # nginx's $request_id, returned by userphoto
    assert len(request_id) == 32
    deadline = time.monotonic() + 5
    line = None
    while line is None and time.monotonic() < deadline:
        for text in serve_log(front.home).read_text().splitlines():
            if f'"request_id":"{request_id}"' in text and '"route"' in text:
                line = json.loads(text)
        time.sleep(0.1)
    assert line is not None, "userphoto logged no line with nginx's request id"
    assert line["client"] == "127.0.0.2" and line["viewer"] == "member"
    assert f"id={request_id}" in (front.tmp / "access.log").read_text()


def test_a_browser_form_post_through_nginx_on_another_port_is_same_site(front: Front) -> None:
    """nginx listens on a port other than 443 here, and a browser's Origin names it: nginx
    forwards the host with its port ($http_host), so userphoto (no public_url set) sees the
    same origin and the sign-in form is not taken for another site's."""
    with httpx.Client(base_url=front.base, verify=str(front.cert), timeout=10) as client:
        page = client.get("/signin")
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        signed_in = client.post(
            "/signin",
            data={"csrf": csrf, "token": front.tokens["ada"], "next": "/"},
            headers={"Origin": front.base},
        )
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/me"
        dropped = client.post(
            "/signout",
            data={"csrf": csrf},
            headers={"Origin": front.base.rsplit(":", 1)[0]},  # the port left out
        )
        assert dropped.status_code == 403
        assert dropped.json()["error"]["message"] == "This request came from another site."
