"""Sessions and CSRF over real HTTP (httpx against `userphoto serve`), no browser."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.browser import Web, astronaut_png, csrf_of
from userphoto.web.session import COOKIE, KEY_FILE


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


# --- sessions every node shares (keys and records in the store) --------------------------------
def _put(client: httpx.Client, cookie: str) -> None:
    """The browser's cookie jar holds exactly this session cookie (a copied one)."""
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie, domain="photos.test", path="/")


def _nodes(web: Web, count: int) -> list:
    """`count` serving processes' sites on the web fixture's one SQLite file (no file copied
    between them; each builds its own App, as a second node does)."""
    from userphoto.api.server import PhotoServer

    return [PhotoServer(web.app(), poll=False) for _ in range(count)]


def test_a_second_node_opens_the_first_nodes_cookie(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("USERPHOTO_WEB_SESSION_RECHECK", "0")  # every request looks at the store
    one, two = _nodes(web, 2)
    opts = {"base_url": "http://photos.test", "follow_redirects": False}
    with TestClient(one.site, **opts) as a, TestClient(two.site, **opts) as b:
        csrf = csrf_of(a.get("/signin").text)
        r = a.post("/signin", data={"csrf": csrf, "token": web.tokens["bob"]})
        assert r.status_code == 303, r.text
        copied = a.cookies[COOKIE]
        _put(b, copied)
        page = b.get("/me")
        assert page.status_code == 200 and "bob@contoso.test" in page.text
        # A write on node two with the CSRF token node one's session carries: not a 403.
        signout = b.post("/signout", data={"csrf": csrf_of(page.text)})
        assert signout.status_code == 303 and signout.headers["location"] == "/signin"
        # The cookie copied before sign-out opens nothing any more, on either node.
        for client in (a, b):
            _put(client, copied)
            r = client.get("/me")
            assert r.status_code == 303 and r.headers["location"].startswith("/signin"), r.text


def test_the_idle_lifetime_ends_a_session(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("USERPHOTO_WEB_SESSION_RECHECK", "0")
    monkeypatch.setenv("USERPHOTO_WEB_SESSION_IDLE", "1")
    (node,) = _nodes(web, 1)
    with TestClient(node.site, base_url="http://photos.test", follow_redirects=False) as c:
        csrf = csrf_of(c.get("/signin").text)
        assert c.post("/signin", data={"csrf": csrf, "token": web.tokens["kim"]}).status_code == 303
        assert c.get("/me").status_code == 200
        time.sleep(1.2)
        assert c.get("/me").status_code == 303  # unused for longer than session_idle


def test_an_old_key_file_is_adopted_so_sessions_survive_the_upgrade(tmp_path) -> None:
    import json

    from cryptography.fernet import Fernet
    from starlette.testclient import TestClient

    from userphoto import auth
    from userphoto.api.server import PhotoServer
    from userphoto.app import App
    from userphoto.config import Settings
    from userphoto.model import User

    home = tmp_path / "home"
    home.mkdir()
    old_key = Fernet.generate_key()
    (home / KEY_FILE).write_bytes(old_key)
    app = App(Settings.load(home))
    app.store.add_user(User(id="id-eve", address="eve@contoso.test", display_name="Eve"))
    _record, token = auth.create_token(app.store, "eve@contoso.test")
    # A signed-in cookie as the previous release made it: no session record.
    before = {"csrf": "c" * 43, "method": "token", "credential": token}
    cookie = Fernet(old_key).encrypt(json.dumps(before).encode()).decode()
    server = PhotoServer(app, poll=False)
    with TestClient(server.site, base_url="http://photos.test", follow_redirects=False) as c:
        _put(c, cookie)
        page = c.get("/me")
        assert page.status_code == 200 and "eve@contoso.test" in page.text
        upgraded = c.cookies[COOKIE]
        assert upgraded != cookie  # now sealed with the store's key, naming a stored session
        assert c.post("/signout", data={"csrf": csrf_of(page.text)}).status_code == 303
        _put(c, upgraded)
        assert c.get("/me").status_code == 303
    keys = app.store.session_keys()
    assert [k for k in keys if k[1] == old_key.decode()], "the old key was adopted"
    assert keys[0][1] != old_key.decode()  # but a new key seals
    app.close()


def test_an_expired_token_is_refused_with_the_reason(web: Web) -> None:
    from datetime import timedelta

    from userphoto import auth

    app = web.app()
    try:
        _record, token = auth.create_token(
            app.store, "pam@contoso.test", lifetime=timedelta(seconds=2)
        )
    finally:
        app.close()
    path = "/v1/whoami"
    for _ in range(100):  # the server reloads credentials within its poll interval
        r = httpx.get(web.base + path, headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200 and r.json()["kind"] == "member"
    app = web.app()
    try:  # the use is recorded (by a background thread of the server)
        for _ in range(100):
            used = {t.id: t.last_used for t in app.store.list_tokens()}[_record.id]
            if used is not None:
                break
            time.sleep(0.02)
        assert used is not None
    finally:
        app.close()
    time.sleep(2.1)
    r = httpx.get(web.base + path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "token_expired" and "expired on" in error["message"]
    assert token not in r.text


def test_leaving_the_directory_ends_the_users_sessions(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from starlette.testclient import TestClient

    from userphoto import auth
    from userphoto.api.server import PhotoServer
    from userphoto.app import App
    from userphoto.config import Settings
    from userphoto.model import User

    monkeypatch.setenv("USERPHOTO_WEB_SESSION_RECHECK", "0")
    home = tmp_path / "home"
    home.mkdir()
    app = App(Settings.load(home))
    user = app.store.add_user(User(id="id-lea", address="lea@contoso.test", display_name="Lea"))
    _record, token = auth.create_token(app.store, user.address)
    server = PhotoServer(app, poll=False)
    with TestClient(server.site, base_url="http://photos.test", follow_redirects=False) as c:
        csrf = csrf_of(c.get("/signin").text)
        assert c.post("/signin", data={"csrf": csrf, "token": token}).status_code == 303
        assert c.get("/me").status_code == 200
        stored = app.store.find_user(user.id)
        assert stored is not None
        app.store.update_user(replace(stored, directory_gone=True))  # the sync saw them go
        r = c.get("/me")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    app.close()


def test_session_keys_rotate_and_the_previous_key_still_opens(tmp_path) -> None:
    from cryptography.fernet import Fernet, InvalidToken

    from userphoto.store import open_store
    from userphoto.web.session import SessionKeys

    store = open_store(f"sqlite:///{tmp_path / 'userphoto.db'}")
    keys = SessionKeys(store, 1.0, tmp_path)
    ((_id, first, _at),) = store.session_keys()
    time.sleep(0.8)
    sealed = keys.seal(b"before")  # sealed near the end of the first key's turn
    time.sleep(0.3)
    assert keys.due
    keys.refresh()
    assert len(store.session_keys()) == 2  # rotated: a new key seals ...
    assert keys.open(sealed) == b"before"  # ... and the previous one still opens
    with pytest.raises(InvalidToken):
        Fernet(first.encode()).decrypt(keys.seal(b"after").encode())
    # Another node reading the same store opens what this one sealed.
    assert SessionKeys(store, 1.0, tmp_path).open(keys.seal(b"x")) == b"x"
    store.close()


PUBLIC = "https://photos.test:8443"  # a public address on a port other than 443


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A node with `[server] public_url` on a non-default port, trusting a proxy on loopback."""
    from tests.support.server import seed, start_server, stop_server

    home = tmp_path_factory.mktemp("origin-home")
    seed(home)
    proc, base = start_server(
        home,
        {
            "USERPHOTO_SERVER_PUBLIC_URL": PUBLIC,
            "USERPHOTO_SERVER_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        },
    )
    try:
        yield base
    finally:
        stop_server(proc)


def test_origin_must_be_the_public_url_or_the_address_asked(behind_proxy: str) -> None:
    """A write's `Origin` is this site when it is `[server] public_url` (scheme, host and port)
    or the address the request was made to, as a trusted proxy forwarded it; anything else,
    a dropped port included, is another site (403) before the CSRF token is even looked at."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.test:9443"}
    cases: list[tuple[str, dict[str, str], bool]] = [
        (PUBLIC, {}, True),
        ("HTTPS://Photos.Test:8443", {}, True),  # scheme and host compared without case
        (behind_proxy, {}, True),  # the node reached directly
        ("https://proxy.test:9443", forwarded, True),  # the proxy's address, port kept
        ("https://photos.test", {}, False),  # the public port dropped
        ("http://photos.test:8443", {}, False),  # another scheme
        ("https://photos.test:8443.evil.example", {}, False),
        ("https://proxy.test", forwarded, False),  # the forwarded port dropped
        ("https://proxy.test:9443", {}, False),  # not forwarded: not this address
        ("https://evil.example", forwarded, False),
        ("not a url", {}, False),
    ]
    with httpx.Client(base_url=behind_proxy, timeout=15) as client:
        csrf = csrf_of(client.get("/signin").text)
        for origin, extra, allowed in cases:
            r = client.post(
                "/signin",
                data={"csrf": csrf, "token": "upt_not-a-real-token"},
                headers={"Origin": origin, **extra},
            )
            if allowed:  # past the Origin and CSRF checks: the made-up token is refused
                assert r.status_code == 401 and "not valid" in r.text, (origin, r.text)
            else:
                assert r.status_code == 403, (origin, r.status_code)
                error = r.json()["error"]
                assert error["code"] == "csrf", origin
                assert error["message"] == "This request came from another site.", origin
