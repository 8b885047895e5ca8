"""Sign-in with a real OpenID provider (npm `oidc-provider`, tests/oidc/) and Chromium.

The provider runs on a loopback port with the development login page (any password; the
login typed is the account, and an address-like account is also its `email`). `kim` is in
the `photo-admins` group, which userphoto is configured to make admins.

Negative id_token cases a correct provider never produces (another audience, expired, a
wrong nonce, a tampered signature) are made by the provider's test-only post-processing of
its own token response (tests/oidc/provider.mjs): the first three re-signed with the
provider's real key, the last with the payload changed under the original signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.oidc.provider import OpenIdProvider
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, astronaut_png, provider_login, shot
from tests.support.net import free_port
from tests.support.server import addr, seed, start_server, stop_server
from userphoto.config import Settings
from userphoto.oidc import OidcConfig, OidcError, OidcProvider
from userphoto.web.session import COOKIE

CLIENT_SECRET = "userphoto-test-client-secret-" + "x" * 20
PORTAL_SECRET = "portal-test-client-secret-" + "y" * 20
API_AUDIENCE = "https://photos.contoso.test"
PORTAL_CALLBACK = "http://127.0.0.1:9/portal/callback"  # never connected: the browser's
# navigation there is intercepted to read the code


@dataclass
class Site:
    base: str
    home: Path
    ids: dict[str, str]
    tokens: dict[str, str]
    provider: OpenIdProvider


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("oidc")
    home = work / "home"
    home.mkdir()
    tokens, _secret, _rsa, _ec, ids = seed(home)
    (home / "oidc-client-secret").write_text(CLIENT_SECRET + "\n")
    # userphoto's port is needed for the provider's client registration, and the provider's
    # issuer for userphoto's settings: pick userphoto's port first.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = OpenIdProvider(
        work,
        clients=[
            {
                "client_id": "userphoto",
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{base}/signin/oidc/callback"],
                "post_logout_redirect_uris": [f"{base}/signin"],
            },
            {
                "client_id": "portal",
                "client_secret": PORTAL_SECRET,
                "redirect_uris": [PORTAL_CALLBACK],
            },
        ],
        groups={addr("kim"): ["staff", "photo-admins"], addr("bob"): ["staff"]},
    ).start()
    env = {
        "USERPHOTO_OIDC_ISSUER": provider.issuer,
        "USERPHOTO_OIDC_CLIENT_ID": "userphoto",
        "USERPHOTO_OIDC_CLIENT_SECRET_FILE": "oidc-client-secret",
        "USERPHOTO_OIDC_SCOPES": "openid email profile groups",
        "USERPHOTO_OIDC_ADMIN_VALUES": '["photo-admins"]',
        "USERPHOTO_OIDC_API_AUDIENCE": API_AUDIENCE,
        "USERPHOTO_OIDC_JWKS_MIN_REFRESH": "1",
    }
    proc, started = start_server(home, env, port=port)
    assert started == base
    try:
        yield Site(base, home, ids, tokens, provider)
    finally:
        stop_server(proc)
        provider.stop()


@pytest.fixture(scope="module")
def chromium(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Chromium for this module, closed at its end: a sync Playwright left running would
    leave its event loop in this thread and break later tests that call `asyncio.run`. If
    the session's browser (tests.support.browser) is already running, share that one (two
    sync Playwright instances cannot coexist)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (scripts/setup.sh installs it)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import Error, sync_playwright

    try:
        pw = sync_playwright().start()
    except Error:  # the session's Playwright runs in this thread already
        yield request.getfixturevalue("browser")
        return
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies), kept on loopback."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    # The provider's pages import a web font; nothing may leave loopback.
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost")
            else route.abort()
        ),
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def untampered(site: Site) -> Iterator[None]:
    yield
    site.provider.tamper("")


def oidc_sign_in(page: Any, site: Site, login: str) -> None:
    page.goto(f"{site.base}/signin")
    page.get_by_role("link", name="Sign in with your organization account").click()
    page.wait_for_url(f"{site.provider.issuer}/**")
    provider_login(page, login)
    page.wait_for_url(f"{site.base}/**")
    page.wait_for_load_state()


def has_session(page: Any, site: Site) -> bool:
    """Whether the browser's cookie names a signed-in viewer (asked of the server)."""
    r = page.request.get(f"{site.base}/me", max_redirects=0)
    return r.status == 200


def refused(page: Any, site: Site, text: str) -> None:
    assert urlsplit(page.url).path == "/signin/oidc/callback"
    error = page.locator("#signin-error")
    error.wait_for()
    assert text in error.inner_text()
    assert page.get_by_role("link", name="Sign in with your organization account").is_visible()
    assert not has_session(page, site)


# --- sign-in ----------------------------------------------------------------------------------
def test_member_signs_in_and_uploads_a_photo(page: Any, site: Site) -> None:
    oidc_sign_in(page, site, addr("bob"))
    assert urlsplit(page.url).path == "/me"
    page.get_by_text(f"Signed in as {addr('bob')}.").wait_for()
    assert page.locator(".badge", has_text="admin").count() == 0
    # The session cookie is ours, encrypted: no token of the provider in it.
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert "eyJ" not in cookie["value"]
    page.set_input_files(
        "#file", files=[{"name": "me.png", "mimeType": "image/png", "buffer": astronaut_png()}]
    )
    page.locator("#crop").wait_for(state="visible")
    page.get_by_role("button", name="Save photo").click()
    page.get_by_text("Saved.").wait_for()
    shot(page, "oidc-member-saved")
    # Admin-only pages stay closed to a member who came through the provider.
    r = page.request.get(f"{site.base}/admin", max_redirects=0)
    assert r.status == 403


def test_admin_by_group(page: Any, site: Site) -> None:
    oidc_sign_in(page, site, addr("kim"))
    assert urlsplit(page.url).path == "/admin"
    page.locator(".badge", has_text="admin").wait_for()
    shot(page, "oidc-admin")


def test_alias_finds_the_user(page: Any, site: Site) -> None:
    oidc_sign_in(page, site, "A.Lovelace@contoso-alias.test")
    page.get_by_text(f"Signed in as {addr('ada')}.").wait_for()
    assert urlsplit(page.url).path == "/me"


def test_unknown_user_gets_a_clear_page(page: Any, site: Site) -> None:
    oidc_sign_in(page, site, "stranger@contoso.test")
    refused(page, site, "no user with that address or alias")
    shot(page, "oidc-unknown-user")
    # The server logs the refusal: one line with the reason, never a token or code.
    log = (site.home / "serve.log").read_text()
    lines = [line for line in log.splitlines() if "sign-in refused (oidc, unknown_user)" in line]
    assert lines and "stranger@contoso.test" in lines[-1]
    assert "eyJ" not in log  # no JWT in the log


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("wrong-aud", "issued for another application"),
        ("expired", "has expired"),
        ("bad-nonce", "nonce does not match"),
        ("bad-signature", "signature does not verify"),
    ],
)
def test_bad_id_token_is_refused(
    page: Any, site: Site, untampered: None, mode: str, message: str
) -> None:
    site.provider.tamper(mode)
    oidc_sign_in(page, site, addr("bob"))
    refused(page, site, message)


def test_state_from_another_browser_is_refused(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/signin/oidc/callback?code=abc&state=forged")
    refused(page, site, "not started in this browser")


def test_key_rotation(page: Any, chromium: Any, site: Site) -> None:
    oidc_sign_in(page, site, addr("bob"))
    assert urlsplit(page.url).path == "/me"
    old_kid = site.provider.kid
    site.provider.rotate()  # a new key; the one userphoto holds is no longer listed
    assert site.provider.kid != old_kid
    time.sleep(1.1)  # [oidc] jwks_min_refresh = 1 in this server
    fresh = chromium.new_context()
    try:
        again = fresh.new_page()
        oidc_sign_in(again, site, addr("bob"))
        assert urlsplit(again.url).path == "/me"
        again.get_by_text(f"Signed in as {addr('bob')}.").wait_for()
    finally:
        fresh.close()


def test_logout_ends_both_sessions(page: Any, site: Site) -> None:
    oidc_sign_in(page, site, addr("bob"))
    assert has_session(page, site)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Signed out of userphoto").wait_for()
    assert not has_session(page, site)
    # RP-initiated logout: the provider asks, then returns to our sign-in page.
    page.wait_for_url(f"{site.provider.issuer}/**")
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(f"{site.base}/signin**")
    # The provider's session is over too: signing in asks for the login again.
    page.get_by_role("link", name="Sign in with your organization account").click()
    page.locator("input[name=login]").wait_for()


# --- the provider's access tokens on the APIs --------------------------------------------------
def portal_access_token(page: Any, site: Site, login: str, resource: str) -> str:
    """What a company portal does: the code flow for its own client, asking for a JWT access
    token for `resource`; the browser's arrival at the portal's callback is intercepted."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "client_id": "portal",
        "response_type": "code",
        "scope": "openid email photos",
        "redirect_uri": PORTAL_CALLBACK,
        "resource": resource,
        "state": "s",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    arrived: list[str] = []

    def callback(route: Any) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, body="portal")

    page.context.route(f"{PORTAL_CALLBACK}**", callback)
    page.goto(f"{site.provider.issuer}/auth?{urlencode(params)}")
    provider_login(page, login)
    page.wait_for_url(f"{PORTAL_CALLBACK}**")
    code = parse_qs(urlsplit(arrived[-1]).query)["code"][0]
    r = httpx.post(
        f"{site.provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PORTAL_CALLBACK,
            "code_verifier": verifier,
        },
        auth=("portal", PORTAL_SECRET),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert token.count(".") == 2  # a JWT, not an opaque token
    return token


def graph_photo(site: Site, who: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{site.base}/v1.0/users/{site.ids[who]}/photo/$value",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_graph_accepts_the_providers_access_token(page: Any, site: Site) -> None:
    token = portal_access_token(page, site, addr("bob"), API_AUDIENCE)
    claims = claims_of(token)
    assert claims["aud"] == API_AUDIENCE and claims["email"] == addr("bob")
    r = graph_photo(site, "bob", token)  # bob's own photo: visible to its owner
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    who = httpx.get(
        f"{site.base}/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert who["kind"] == "member" and who["address"] == addr("bob")
    # The same person's token for another audience is refused.
    other = portal_access_token(page, site, addr("bob"), "https://other.contoso.test")
    assert claims_of(other)["aud"] == "https://other.contoso.test"
    refused_r = graph_photo(site, "bob", other)
    assert refused_r.status_code == 401
    assert "another application" in refused_r.text
    # Tampered: another person's address under the original signature.
    head, _body, sig = token.split(".")
    forged_claims = {**claims, "email": addr("kim")}
    forged_body = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=")
    assert graph_photo(site, "bob", f"{head}.{forged_body.decode()}.{sig}").status_code == 401


def test_expired_and_unknown_person_access_tokens_are_refused(site: Site) -> None:
    now = int(time.time())
    base = {"iss": site.provider.issuer, "aud": API_AUDIENCE, "sub": addr("bob")}
    expired = site.provider.sign(
        {**base, "email": addr("bob"), "iat": now - 7200, "exp": now - 3600}
    )
    r = graph_photo(site, "bob", expired)
    assert r.status_code == 401 and "expired" in r.text
    stranger = site.provider.sign(
        {**base, "email": "stranger@contoso.test", "iat": now, "exp": now + 600}
    )
    r = graph_photo(site, "bob", stranger)
    assert r.status_code == 401 and "stranger" not in r.text
    like_id_token = site.provider.sign(
        {**base, "email": addr("bob"), "iat": now, "exp": now + 600, "nonce": "n"}
    )
    r = graph_photo(site, "bob", like_id_token)
    assert r.status_code == 401 and "not an access token" in r.text
    # The same claims, properly signed and for a real user, are served: the refusals above
    # were for the reasons given.
    good = site.provider.sign({**base, "email": addr("bob"), "iat": now, "exp": now + 600})
    assert graph_photo(site, "bob", good).status_code == 200


# --- the key set, in process -----------------------------------------------------------------
def test_unknown_key_ids_refetch_the_key_set_at_most_once_per_interval(
    site: Site, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("s")
    settings = Settings(
        tmp_path,
        {
            "oidc": {
                "issuer": site.provider.issuer,
                "client_id": "userphoto",
                "client_secret_file": "secret",
                "jwks_min_refresh": 60,
            }
        },
    )
    config = OidcConfig.from_settings(settings)
    assert config is not None and config.client_secret == "s"
    provider = OidcProvider(config)
    assert provider.signing_key(site.provider.kid).key_id == site.provider.kid
    assert provider.jwks_fetches == 1
    for _ in range(5):  # forged key ids: one refetch at most, then refused from memory
        with pytest.raises(OidcError, match="key the identity provider does not list"):
            provider.signing_key("forged-" + secrets.token_hex(4))
    assert provider.jwks_fetches == 1
    provider._keys_fetched -= 61  # the interval has passed
    with pytest.raises(OidcError):
        provider.signing_key("forged-again")
    assert provider.jwks_fetches == 2


# --- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({"issuer": "https://id.example"}, "client_id is missing"),
        ({"issuer": "https://id.example", "client_id": "c"}, "no client secret"),
        (
            {"issuer": "https://id.example", "client_id": "c", "client_secret_file": "nope"},
            "cannot read client_secret_file",
        ),
        (
            {
                "issuer": "https://id.example",
                "client_id": "c",
                "client_secret": "s",
                "user_claim": "mail",
            },
            "user_claim must be one of email, preferred_username, upn",
        ),
        (
            {"issuer": "https://id.example", "client_id": "c", "client_secret": "s", "timeout": -1},
            "timeout must be a number of seconds",
        ),
    ],
)
def test_configuration_errors_say_what_to_do(
    tmp_path: Path, oidc: dict[str, Any], message: str
) -> None:
    from userphoto.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        OidcConfig.from_settings(Settings(tmp_path, {"oidc": oidc}))


def test_no_issuer_means_no_oidc(tmp_path: Path) -> None:
    assert OidcConfig.from_settings(Settings(tmp_path, {})) is None
    assert OidcConfig.from_settings(Settings(tmp_path, {"oidc": {"client_id": "c"}})) is None


def test_client_secret_from_the_environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("USERPHOTO_OIDC_ISSUER", "https://id.example/")
    monkeypatch.setenv("USERPHOTO_OIDC_CLIENT_ID", "userphoto")
    monkeypatch.setenv("USERPHOTO_OIDC_CLIENT_SECRET", "12345")  # a TOML number: kept as text
    config = OidcConfig.from_settings(Settings.load(tmp_path))
    assert config is not None
    assert config.issuer == "https://id.example" and config.client_secret == "12345"
    assert "12345" not in repr(config)
