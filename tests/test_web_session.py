"""Sessions and CSRF over real HTTP (httpx against `userphoto serve`), no browser."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.browser import Web, astronaut_png
from userphoto.web.session import COOKIE, KEY_FILE


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def client(web: Web) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.base, timeout=15, follow_redirects=False) as c:
        yield c


def signed_in(client: httpx.Client, web: Web, who: str) -> str:
    """Sign in through the form; returns the new session's CSRF token."""
    token = csrf_of(client.get("/signin").text)
    r = client.post("/signin", data={"csrf": token, "token": web.tokens[who], "next": "/"})
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/me" if who != "admin" else "/admin").text)


def test_cookie_flags(client: httpx.Client, web: Web) -> None:
    r = client.get("/signin")
    header = r.headers["set-cookie"]
    assert header.startswith(COOKIE + "=")
    flags = {p.strip().split("=")[0].lower() for p in header.split(";")[1:]}
    assert {"httponly", "path", "max-age", "samesite"} <= flags
    assert "samesite=lax" in header.lower()
    assert "secure" not in flags  # plain http on loopback; https sets it (below)
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    # The session keys live in the store, shared by every node: no key file in the folder.
    assert not (web.home / KEY_FILE).exists()


def test_secure_flag_over_https(web: Web) -> None:
    from starlette.testclient import TestClient

    from userphoto.api.server import PhotoServer

    server = PhotoServer(web.app(), poll=False)
    with TestClient(server.site, base_url="https://photos.test") as tc:
        header = tc.get("/signin").headers["set-cookie"].lower()
    assert "; secure" in header and "httponly" in header


def test_sign_in_needs_csrf(client: httpx.Client, web: Web) -> None:
    client.get("/signin")
    token = web.tokens["ada"]
    missing = client.post("/signin", data={"token": token})
    assert missing.status_code == 403
    wrong = client.post("/signin", data={"csrf": "x" * 43, "token": token})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "csrf"
    # Without any session cookie at all (a cross-site form post in a fresh browser).
    fresh = httpx.post(f"{web.base}/signin", data={"csrf": "x", "token": token})
    assert fresh.status_code == 403


def test_sign_in_rotates_the_session_and_hides_the_token(client: httpx.Client, web: Web) -> None:
    before = client.get("/signin")
    old_csrf = csrf_of(before.text)
    old_cookie = client.cookies[COOKIE]
    r = client.post("/signin", data={"csrf": old_csrf, "token": web.tokens["ada"]})
    assert r.status_code == 303 and r.headers["location"] == "/me"
    assert client.cookies[COOKIE] != old_cookie
    assert web.tokens["ada"] not in client.cookies[COOKIE]  # encrypted, not just signed
    page = client.get("/me")
    assert page.status_code == 200 and "ada@contoso.test" in page.text
    assert web.tokens["ada"] not in page.text
    assert csrf_of(page.text) != old_csrf


def test_bad_token_is_refused_in_plain_words(client: httpx.Client) -> None:
    csrf = csrf_of(client.get("/signin").text)
    r = client.post("/signin", data={"csrf": csrf, "token": "upt_not-a-real-token"})
    assert r.status_code == 401
    assert "not valid" in r.text


def test_writes_need_the_sessions_csrf_token(client: httpx.Client, web: Web) -> None:
    csrf = signed_in(client, web, "gus")
    key = web.ids["gus"]
    body = astronaut_png()
    for headers in ({}, {"X-CSRF-Token": "wrong"}):
        r = client.post(f"/web/users/{key}/preview", content=body, headers=headers)
        assert r.status_code == 403, headers
    other_site = client.post(
        f"/web/users/{key}/preview",
        content=body,
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    for action in ("save", "cancel", "remove", "settings"):
        r = client.post(f"/web/users/{key}/{action}", data={"back": "/me"})
        assert r.status_code == 403, action
        r = client.post(f"/web/users/{key}/{action}", data={"csrf": "nope", "back": "/me"})
        assert r.status_code == 403, action
    signout = client.post("/signout", data={})
    assert signout.status_code == 403
    # The right token works (and the same request from this origin is fine).
    ok = client.post(
        f"/web/users/{key}/preview",
        content=body,
        headers={"X-CSRF-Token": csrf, "Origin": web.base},
    )
    assert ok.status_code == 200, ok.text
    assert set(ok.json()["crop"]) == {"x", "y", "size"}
    cancel = client.post(f"/web/users/{key}/cancel", data={"csrf": csrf, "back": "/me"})
    assert cancel.status_code == 303 and cancel.headers["location"] == "/me"


def test_members_write_only_their_own_photo(client: httpx.Client, web: Web) -> None:
    csrf = signed_in(client, web, "gus")
    r = client.post(
        f"/web/users/{web.ids['ada']}/preview",
        content=astronaut_png(),
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Members may change only their own photo."
    # Nor may they see someone else's pending preview.
    assert client.get(f"/web/users/{web.ids['ada']}/photo?preview=1&size=96").status_code == 403


def test_pages_need_sign_in_and_tampered_cookies_are_ignored(
    client: httpx.Client, web: Web
) -> None:
    r = client.get("/me")
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fme"
    signed_in(client, web, "ada")
    value = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert client.get("/me").status_code == 303  # not signed in any more


def test_unsupported_upload_messages_match_the_api(client: httpx.Client, web: Web) -> None:
    csrf = signed_in(client, web, "gus")
    r = client.post(
        f"/web/users/{web.ids['gus']}/preview",
        content=b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 415 or 400 <= r.status_code < 500
    assert r.json()["error"]["code"] == "image_unsupported_type"
    api = httpx.put(
        f"{web.base}/v1/users/{web.ids['gus']}/photo",
        content=b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        headers={"Authorization": f"Bearer {web.tokens['gus']}"},
    )
    assert api.json()["error"]["message"] == r.json()["error"]["message"]


def test_revoking_the_token_ends_the_session(client: httpx.Client, web: Web) -> None:
    from userphoto import auth

    app = web.app()
    try:
        record, token = auth.create_token(app.store, "bob@contoso.test")
    finally:
        app.close()
    for _ in range(100):  # the server reloads credentials within its poll interval
        csrf = csrf_of(client.get("/signin").text)
        r = client.post("/signin", data={"csrf": csrf, "token": token})
        if r.status_code != 401:
            break
        time.sleep(0.05)
    assert r.status_code == 303
    assert client.get("/me").status_code == 200
    app = web.app()
    try:
        assert app.store.delete_token(record.id)
    finally:
        app.close()
    for _ in range(100):
        if client.get("/me").status_code != 200:
            break
        time.sleep(0.05)
    last = client.get("/me")
    assert last.status_code == 303, last.text


def test_admin_previews_for_an_sd_only_account(client: httpx.Client, web: Web) -> None:
    import io

    from PIL import Image

    csrf = signed_in(client, web, "admin")
    hal = web.ids["hal"]
    r = client.post(
        f"/web/users/{hal}/preview", content=astronaut_png(), headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert max(data["sizes"]) == 96 and data["capped"] == [240, 648]
    for size, url in data["previews"].items():
        image = client.get(url)
        assert image.status_code == 200, (size, image.text)
        assert Image.open(io.BytesIO(image.content)).size == (96, 96)
    cancel = client.post(f"/web/users/{hal}/cancel", data={"csrf": csrf, "back": "/admin"})
    assert cancel.status_code == 303 and cancel.headers["location"] == "/admin"


def test_web_pictures_answer_as_the_native_api_for_the_session(
    client: httpx.Client, web: Web
) -> None:
    """/web/users/{key}/photo reads through the same lookup and rule as the native API: for a
    signed-in member every user's picture has the API's status, source and bytes; an
    anonymous browser gets the API's anonymous answers; a matching ETag is a 304."""
    signed_in(client, web, "gus")
    checked = 0
    for who, uid in web.ids.items():
        for size in (48, 240):
            page = client.get(f"/web/users/{uid}/photo?size={size}")
            api = httpx.get(
                f"{web.base}/v1/users/{uid}/photo?size={size}",
                headers={"Authorization": f"Bearer {web.tokens['gus']}"},
                timeout=10,
            )
            assert page.status_code == api.status_code, who
            assert page.headers.get("x-photo-source") == api.headers.get("x-photo-source"), who
            if api.status_code == 200:
                assert page.content == api.content and page.headers["vary"] == "Cookie"
                again = client.get(
                    f"/web/users/{uid}/photo?size={size}",
                    headers={"If-None-Match": page.headers["etag"]},
                )
                assert again.status_code == 304 and again.headers["etag"] == page.headers["etag"]
            elif api.status_code == 302:
                assert page.headers["location"] == api.headers["location"]
                listing = client.get(f"/web/users/{uid}/photo?size=48&url=0")
                assert listing.status_code == 200 and listing.content.startswith(b"\xff\xd8")
            checked += 1
    assert checked >= 4
    with httpx.Client(base_url=web.base, timeout=15) as anonymous:
        for uid in web.ids.values():
            page = anonymous.get(f"/web/users/{uid}/photo?size=96")
            api = httpx.get(f"{web.base}/v1/users/{uid}/photo?size=96", timeout=10)
            assert page.status_code == api.status_code
