"""The identity provider's signing keys over time, against the real provider (tests/oidc):
a key it stops listing stops verifying within the key set's cache age, a key id reused for
new key material signs in after one re-read, and the refusals say why.

Tokens are minted with the provider's own private keys (`OpenIdProvider.sign`), as the
provider signs its access tokens; the key set userphoto checks them with is the one the
running provider serves, with the Cache-Control header it is told to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.oidc.provider import OpenIdProvider
from userphoto.oidc import NotInDirectory, OidcConfig, OidcError, OidcProvider

AUDIENCE = "https://photos.contoso.test"
SECRET = "userphoto-keys-test-secret-" + "z" * 20


def new_key(kid: str) -> tuple[str, rsa.RSAPrivateKey]:
    return kid, rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    work: Path = tmp_path_factory.mktemp("oidc-keys")
    client = {
        "client_id": "userphoto",
        "client_secret": SECRET,
        "redirect_uris": ["http://127.0.0.1:9/signin/oidc/callback"],
    }
    started = OpenIdProvider(work, clients=[client], groups={}).start()
    try:
        yield started
    finally:
        started.stop()


def checker(provider: OpenIdProvider, **config: Any) -> OidcProvider:
    return OidcProvider(
        OidcConfig(provider.issuer, "userphoto", SECRET, api_audience=AUDIENCE, **config)
    )


def access_token(provider: OpenIdProvider, key: tuple[str, rsa.RSAPrivateKey]) -> str:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": "ada",
        "email": "ada@contoso.test",
        "iat": now,
        "exp": now + 600,
    }
    return provider.sign(claims, key)


@pytest.mark.parametrize(
    ("served_max_age", "jwks_max_age"),
    [(1, 3600.0), (3600, 1.0)],
    ids=["provider-says-1s", "setting-caps-at-1s"],
)
def test_a_retired_key_stops_verifying_within_the_cache_age(
    provider: OpenIdProvider, served_max_age: int, jwks_max_age: float
) -> None:
    k1, k2 = new_key("k1"), new_key("k2")
    provider.publish([k2, k1], max_age=served_max_age)
    oidc = checker(provider, jwks_min_refresh=0.2, jwks_max_age=jwks_max_age)
    old, current = access_token(provider, k1), access_token(provider, k2)
    assert oidc.verify_access_token(old)["sub"] == "ada"  # both listed: both verify
    assert oidc.verify_access_token(current)["sub"] == "ada"
    provider.publish([k2], max_age=served_max_age)  # k1 retired
    time.sleep(1.2)
    with pytest.raises(OidcError, match="does not list"):
        oidc.verify_access_token(old)
    assert oidc.verify_access_token(current)["sub"] == "ada"


def test_a_long_cache_age_is_kept_without_refetching(provider: OpenIdProvider) -> None:
    k1 = new_key("k1")
    provider.publish([k1], max_age=3600)
    oidc = checker(provider, jwks_min_refresh=0.2, jwks_max_age=3600.0)
    token = access_token(provider, k1)
    for _ in range(3):
        oidc.verify_access_token(token)
        time.sleep(0.3)
    assert oidc.jwks_fetches == 1  # the provider said an hour: one fetch


def test_a_reused_key_id_with_new_material_verifies_after_one_reread(
    provider: OpenIdProvider,
) -> None:
    before, after = new_key("same-kid"), new_key("same-kid")
    provider.publish([before], max_age=3600)
    oidc = checker(provider, jwks_min_refresh=0.5, jwks_max_age=3600.0)
    assert oidc.verify_access_token(access_token(provider, before))["sub"] == "ada"
    provider.publish([after], max_age=3600)
    time.sleep(0.6)  # past the re-read rate limit
    fetched = oidc.jwks_fetches
    assert oidc.verify_access_token(access_token(provider, after))["sub"] == "ada"
    assert oidc.jwks_fetches == fetched + 1
    # A forged token under the same kid: refused, and re-reads stay rate-limited.
    forged = access_token(provider, new_key("same-kid"))
    for _ in range(5):
        with pytest.raises(OidcError, match="signature does not verify"):
            oidc.verify_access_token(forged)
    assert oidc.jwks_fetches <= fetched + 2


def test_a_missing_admin_claim_is_named_and_logged(
    provider: OpenIdProvider, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from userphoto.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'userphoto.db'}", None)
    oidc = checker(provider, admin_values=("photo-admins",), scopes="openid email profile")
    claims = {"email": "boss@contoso.test", "sub": "boss"}  # no `groups`: no scope asked it
    with (
        caplog.at_level(logging.INFO, logger="userphoto.oidc"),
        pytest.raises(NotInDirectory) as refused,
    ):
        oidc.identify(claims, store)
    message = refused.value.message
    assert refused.value.code == "admin_claim_missing"
    assert "'groups' claim" in message and "[oidc] scopes" in message
    assert "no user with that address" not in message
    assert any("no 'groups' claim" in r.getMessage() for r in caplog.records)
    # With the claim present but not naming an admin group: the plain unknown-user answer.
    with pytest.raises(NotInDirectory, match="no user with that address"):
        oidc.identify({**claims, "groups": ["staff"]}, store)
    store.close()


def test_public_url_builds_the_callback_and_is_checked_at_start(
    provider: OpenIdProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import parse_qs, urlsplit

    from starlette.testclient import TestClient

    from userphoto.api.server import PhotoServer
    from userphoto.app import App
    from userphoto.config import ConfigError, Settings

    monkeypatch.setenv("USERPHOTO_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("USERPHOTO_OIDC_CLIENT_ID", "userphoto")
    monkeypatch.setenv("USERPHOTO_OIDC_CLIENT_SECRET", SECRET)
    for bad in ("photos.contoso.test", "ftp://photos.contoso.test", "https://p.test/?a=1"):
        monkeypatch.setenv("USERPHOTO_SERVER_PUBLIC_URL", bad)
        with pytest.raises(ConfigError, match="public_url"):
            PhotoServer(App(Settings.load(tmp_path)), poll=False)
    monkeypatch.setenv("USERPHOTO_SERVER_PUBLIC_URL", "https://photos.contoso.test/")
    server = PhotoServer(App(Settings.load(tmp_path)), poll=False)
    # The request arrives under the proxy's upstream name; the provider must see ours.
    with TestClient(server.site, base_url="http://userphoto", follow_redirects=False) as c:
        r = c.get("/signin/oidc")
    assert r.status_code == 303, r.text
    sent = parse_qs(urlsplit(r.headers["location"]).query)
    assert sent["redirect_uri"] == ["https://photos.contoso.test/signin/oidc/callback"]
