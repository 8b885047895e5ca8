"""`userphoto serve` over a real socket: every API surface, caching, auth, no enumeration."""

from __future__ import annotations

import hashlib
import io
import time

import httpx
import jwt
import pytest
from PIL import Image

from tests.support.server import ALLOWED_DEFAULT, Served, addr, directory_jpeg, on_each_store
from userphoto.demo import portrait


def md5(address: str) -> str:
    return hashlib.md5(address.strip().lower().encode()).hexdigest()


def sha256(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def dims(r: httpx.Response) -> tuple[int, int]:
    assert r.headers["content-type"] == "image/jpeg", r.text[:200]
    with Image.open(io.BytesIO(r.content)) as im:
        return im.size


def partner_jwt(
    s: Served,
    *,
    iss: str = "partner.example",
    sub: str = "pia@partner.example",
    aud: str = "contoso.test",
    exp: float | None = None,
    key: object = None,
    alg: str = "HS256",
) -> str:
    claims = {"iss": iss, "sub": sub, "aud": aud, "exp": int(exp or time.time() + 300)}
    return jwt.encode(claims, key if key is not None else s.partner_secret, algorithm=alg)


# --- native -------------------------------------------------------------------------------------
@on_each_store
def test_native_photo_with_source_header_and_caching_headers(served: Served) -> None:
    r = served.get(f"/v1/users/{addr('ada')}/photo?size=240", "bob")
    assert r.status_code == 200
    assert dims(r) == (240, 240)
    assert r.headers["x-photo-source"] == "hd"
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert etag.strip('"') == hashlib.sha256(r.content).hexdigest()[:32]
    assert r.headers["cache-control"].startswith("private")
    assert "Authorization" in r.headers["vary"]
    assert r.headers["x-content-type-options"] == "nosniff"


@on_each_store
def test_native_same_photo_by_id_alias_and_any_case(served: Served) -> None:
    etags = {
        served.get(f"/v1/users/{key}/photo?size=96", "bob").headers["etag"]
        for key in ("id-ada", addr("ada"), "A.Lovelace@Contoso-Alias.test", "ADA@contoso.test")
    }
    assert len(etags) == 1


def test_native_if_none_match_gives_304_in_every_form(served: Served) -> None:
    path = f"/v1/users/{addr('ada')}/photo?size=120"
    etag = served.get(path, "bob").headers["etag"]
    for inm in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        r = served.get(path, "bob", **{"If-None-Match": inm})
        assert r.status_code == 304, inm
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert "cache-control" in r.headers
    assert served.get(path, "bob", **{"If-None-Match": '"other"'}).status_code == 200


def test_native_head_has_headers_and_no_body(served: Served) -> None:
    path = f"/v1/users/{addr('ada')}/photo?size=64"
    get = served.get(path, "bob")
    head = served.request("HEAD", path, "bob")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == str(len(get.content))


@on_each_store
def test_native_sizes_legacy_small_source_and_sd_account(served: Served) -> None:
    assert dims(
        served.get(f"/v1/users/{addr('ada')}/photo?size=HR648x648&client=legacy", "bob")
    ) == (96, 96)
    assert dims(served.get(f"/v1/users/{addr('eve')}/photo?size=648", "bob")) == (240, 240)
    assert dims(served.get(f"/v1/users/{addr('hal')}/photo?size=240", "bob")) == (96, 96)
    assert dims(served.get(f"/v1/users/{addr('ada')}/photo", "bob")) == (648, 648)


def test_native_meta_matches_the_photo(served: Served) -> None:
    meta = served.get(f"/v1/users/{addr('eve')}/photo/meta", "bob").json()
    assert meta["source"] == "hd"
    assert meta["sizes"] == [48, 64, 96, 120, 240] and meta["size"] == 240
    photo = served.get(f"/v1/users/{addr('eve')}/photo", "bob")
    assert meta["etag"] == photo.headers["etag"]
    assert meta["updated"]
    assert [t["step"] for t in meta["trace"]] == ["visibility", "hd", "directory", "url", "default"]


def test_meta_trace_speaks_of_the_viewer_who_asks_not_the_one_who_built_it(
    served: Served,
) -> None:
    """Answers are cached per viewer class (resolve's own): an admin's cached /meta trace is
    never served to a member, nor a member's to an admin, though both are internal."""

    def visibility(who: str, query: str) -> str:
        meta = served.get(f"/v1/users/{addr('ada')}/photo/meta?{query}", who).json()
        return next(t["reason"] for t in meta["trace"] if t["step"] == "visibility")

    for first, then, query in (
        ("admin", "bob", "client=web&size=64"),
        ("bob", "admin", "client=web&size=48"),
    ):
        kinds = {"admin": "an admin", "bob": "a member"}
        for who in (first, then, first, then):  # the second pair is served from the cache
            reason = visibility(who, query)
            assert reason.endswith(f"admits {kinds[who]} viewer"), (who, reason)


@on_each_store
def test_native_directory_thumbnail_inside_only(served: Served) -> None:
    inside = served.get(f"/v1/users/{addr('cy')}/photo", "bob")
    assert inside.status_code == 200
    assert inside.headers["x-photo-source"] == "directory"
    assert dims(inside) == (80, 100)  # served as it is, not squared
    outside = served.get(f"/v1/users/{addr('cy')}/photo")
    assert outside.status_code == 404
    assert outside.content == served.get(f"/v1/users/{addr('nobody')}/photo").content


@on_each_store
def test_native_removal_record_blocks_directory_default_picture_instead(served: Served) -> None:
    r = served.get(f"/v1/users/{addr('gus')}/photo?size=120", "bob")
    assert r.headers["x-photo-source"] == "default"
    assert dims(r) == (120, 120)
    r404 = served.get(f"/v1/users/{addr('gus')}/photo?default=404", "bob")
    assert r404.status_code == 404
    assert r404.json()["error"]["code"] == "no_photo"
    assert "--clear-record" in r404.json()["error"]["message"]
    meta = served.get(f"/v1/users/{addr('gus')}/photo/meta", "bob").json()
    directory = next(t for t in meta["trace"] if t["step"] == "directory")
    assert directory["verdict"] == "blocked" and "--clear-record" in directory["reason"]


@on_each_store
def test_native_web_address_picture_is_a_redirect(served: Served) -> None:
    r = served.get(f"/v1/users/{addr('fay')}/photo")
    assert r.status_code == 302
    assert r.headers["location"] == "https://photos.example/fay.jpg"
    assert r.headers["x-photo-source"] == "url"


def test_native_default_initials_for_members(served: Served) -> None:
    r = served.get(f"/v1/users/{addr('ivy')}/photo?size=48", "bob")
    assert r.headers["x-photo-source"] == "default" and dims(r) == (48, 48)
    with Image.open(io.BytesIO(r.content)) as im:
        corner = im.convert("RGB").getpixel((1, 1))
    assert corner != (255, 255, 255)  # a coloured background, not a blank


@on_each_store
def test_native_hidden_is_403_inside(served: Served) -> None:
    r = served.get(f"/v1/users/{addr('dee')}/photo", "bob")
    assert r.status_code == 403
    assert "hide" in r.json()["error"]["message"]
    own = served.get(f"/v1/users/{addr('gus')}/photo", "gus")  # own photo: removed → default
    assert own.status_code == 200


def test_public_answers_are_publicly_cacheable(served: Served) -> None:
    r = served.get(f"/v1/users/{addr('ada')}/photo?size=48")
    assert r.status_code == 200
    assert r.headers["cache-control"].startswith("public, max-age=")


# --- no enumeration ------------------------------------------------------------------------------
@on_each_store
@pytest.mark.parametrize("who", [None, "partner"])
def test_no_enumeration_for_external_viewers(served: Served, who: str | None) -> None:
    token = partner_jwt(served) if who == "partner" else None
    cases = [
        addr("nobody-here"),
        addr("dee"),
        addr("bob"),
        addr("cy"),
        addr("max"),
        addr("lee"),
        addr("ivy"),
    ]
    templates = [
        "/v1/users/{a}/photo",
        "/v1/users/{a}/photo/meta",
        "/v1.0/users/{a}/photo",
        "/v1.0/users/{a}/photo/$value",
        "/v1.0/users/{a}/photos",
        "/ews/Exchange.asmx/s/GetUserPhoto?email={a}&size=HR96x96",
        "/avatar/{h}?d=404",
        "/avatar/{h}",
        "/avatar/{h}?d=initials",
    ]
    for template in templates:
        answers = set()
        for a in cases:
            r = served.get(template.format(a=a, h=md5(a)), token)
            answers.add((r.status_code, r.content, r.headers.get("content-type")))
        assert len(answers) == 1, (template, answers)
        status = next(iter(answers))[0]
        assert status in (404, 200), template


# --- Graph ---------------------------------------------------------------------------------------
@on_each_store
def test_graph_metadata_value_and_sizes(served: Served) -> None:
    base = f"/v1.0/users/{addr('ada')}"
    meta = served.get(f"{base}/photo", "bob").json()
    assert meta["@odata.mediaContentType"] == "image/jpeg"
    assert (meta["id"], meta["width"], meta["height"]) == ("648x648", 648, 648)
    value = served.get(f"{base}/photo/$value", "bob")
    assert dims(value) == (648, 648)
    assert meta["@odata.mediaEtag"] == value.headers["etag"]
    listing = served.get(f"{base}/photos", "bob").json()["value"]
    assert [p["id"] for p in listing] == [
        f"{s}x{s}" for s in (48, 64, 96, 120, 240, 360, 432, 504, 648)
    ]
    assert served.get(f"{base}/photos/96x96", "bob").json()["width"] == 96
    assert dims(served.get(f"{base}/photos/96X96/$value", "bob")) == (96, 96)
    by_id = served.get("/v1.0/users/id-ada/photo", "bob").json()
    assert by_id == meta


@on_each_store
def test_graph_errors_in_graphs_shape(served: Served) -> None:
    r = served.get(f"/v1.0/users/{addr('eve')}/photos/648x648", "bob")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ImageNotFound"
    bad = served.get(f"/v1.0/users/{addr('ada')}/photos/97x97", "bob")
    assert bad.status_code == 400 and "240x240" in bad.json()["error"]["message"]
    unknown = served.get(f"/v1.0/users/{addr('zed')}/photo", "bob")
    assert unknown.json()["error"]["code"] == "Request_ResourceNotFound"
    assert served.get(f"/v1.0/users/{addr('zed')}/photo").json()["error"]["code"] == "ImageNotFound"
    me = served.get("/v1.0/me/photo/$value")
    assert me.status_code == 401 and me.json()["error"]["code"] == "InvalidAuthenticationToken"
    nophoto = served.get("/v1.0/me/photo", "max")
    assert nophoto.status_code == 404 and nophoto.json()["error"]["code"] == "ImageNotFound"


def test_graph_me_is_the_caller(served: Served) -> None:
    me = served.get("/v1.0/me/photo/$value", "ada")
    other = served.get(f"/v1.0/users/{addr('ada')}/photo/$value", "bob")
    assert me.status_code == 200 and me.content == other.content
    assert served.get("/v1.0/me/photos/48x48/$value", "ada").status_code == 200
    assert served.get("/v1.0/me/photo", "bob").json()["id"] == "648x648"


@on_each_store
def test_graph_disabled_account_falls_back_to_directory_inside(served: Served) -> None:
    r = served.get(f"/v1.0/users/{addr('jon')}/photo/$value", "bob")
    assert r.status_code == 200 and dims(r) == (80, 100)
    meta = served.get(f"/v1.0/users/{addr('jon')}/photo", "bob").json()
    assert meta["id"] == "80x100"


@on_each_store
def test_graph_put_and_delete_through_the_photo_lifecycle(served: Served) -> None:
    path = f"/v1.0/users/{addr('kim')}/photo/$value"
    jpeg = portrait(3, 500, 500)
    r = served.request("PUT", path, "kim", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    got = served.get(path, "bob")  # the writer's own process dropped its cache at once
    assert got.status_code == 200 and dims(got) == (432, 432)
    app = served.app()
    try:
        entry = app.store.audit_log(served.ids["kim"], limit=1)[0]
        assert (entry.action, entry.actor, entry.via) == ("photo.set", addr("kim"), "graph")
    finally:
        app.close()
    other = served.request(
        "PUT",
        f"/v1.0/users/{addr('ada')}/photo/$value",
        "kim",
        content=jpeg,
        headers={"Content-Type": "image/jpeg"},
    )
    assert other.status_code == 403
    assert served.request("DELETE", f"/v1.0/users/{addr('kim')}/photo", "bob").status_code == 403
    deleted = served.request("DELETE", f"/v1.0/users/{addr('kim')}/photo", "admin")
    assert deleted.status_code == 204
    after = served.get(path, "bob")
    assert after.status_code == 404 and after.json()["error"]["code"] == "ImageNotFound"


def test_graph_put_refusals_are_specific(served: Served) -> None:
    path = f"/v1.0/users/{addr('kim')}/photo/$value"
    jpeg = portrait(4, 300, 300)

    def put(who: str | None, body: bytes, ctype: str = "image/jpeg") -> httpx.Response:
        return served.request("PUT", path, who, content=body, headers={"Content-Type": ctype})

    assert put(None, jpeg).status_code == 401
    assert put(partner_jwt(served), jpeg).status_code == 403
    assert put("kim", jpeg, "text/plain").status_code == 415
    gif = io.BytesIO()
    Image.new("RGB", (100, 100)).save(gif, "GIF")
    assert put("kim", gif.getvalue()).status_code == 415
    too_big = put("kim", b"\xff\xd8\xff" + b"0" * (4 * 1024 * 1024))
    assert (
        too_big.status_code == 413
        and "larger than the 4.0 MB limit" in too_big.json()["error"]["message"]
    )
    corrupt = put("kim", jpeg[: len(jpeg) // 3])
    assert corrupt.status_code == 422 and corrupt.json()["error"]["message"]
    assert put("kim", b"").status_code == 400


def test_self_service_policy_off_blocks_members_not_admins(served_policy_off: Served) -> None:
    s = served_policy_off
    path = f"/v1.0/users/{addr('kim')}/photo/$value"
    jpeg = portrait(5, 300, 300)
    own = s.request("PUT", path, "kim", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert own.status_code == 403 and "self_service" in own.json()["error"]["message"]
    admin = s.request("PUT", path, "admin", content=jpeg, headers={"Content-Type": "image/png"})
    assert admin.status_code == 200
    native = s.request("PUT", f"/v1/users/{addr('kim')}/photo", "kim", content=jpeg)
    assert native.status_code == 403


# --- EWS -----------------------------------------------------------------------------------------
@on_each_store
def test_ews_sizes_case_insensitive_and_largest_available(served: Served) -> None:
    ews = "/ews/Exchange.asmx/s/GetUserPhoto?email={}&size={}"
    assert dims(served.get(ews.format(addr("ada"), "HR240x240"), "bob")) == (240, 240)
    assert dims(served.get(ews.format(addr("ada"), "hr240X240"), "bob")) == (240, 240)
    assert dims(served.get(ews.format(addr("eve"), "HR648x648"), "bob")) == (240, 240)
    assert dims(
        served.get(f"/EWS/exchange.asmx/s/getuserphoto?email={addr('ada')}&size=HR64x64", "bob")
    ) == (64, 64)
    bad = served.get(ews.format(addr("ada"), "HR50x50"), "bob")
    assert bad.status_code == 400 and "648" in bad.text


@on_each_store
def test_ews_48_and_missing_hd_use_directory_inside_only(served: Served) -> None:
    ews = "/ews/Exchange.asmx/s/GetUserPhoto?email={}&size={}"
    small = served.get(ews.format(addr("ned"), "HR48x48"), "bob")
    assert small.headers["x-photo-source"] == "directory"
    assert served.get(ews.format(addr("ned"), "HR64x64"), "bob").headers["x-photo-source"] == "hd"
    outside = served.get(ews.format(addr("ned"), "HR48x48"))
    assert outside.headers["x-photo-source"] == "hd" and dims(outside) == (48, 48)
    assert (
        served.get(ews.format(addr("cy"), "HR96x96"), "bob").headers["x-photo-source"]
        == "directory"
    )
    assert served.get(ews.format(addr("cy"), "HR96x96")).status_code == 404
    assert served.get(ews.format(addr("max"), "HR96x96"), "bob").status_code == 404


def test_ews_etag_and_304(served: Served) -> None:
    url = f"/ews/Exchange.asmx/s/GetUserPhoto?email={addr('ada')}&size=HR96x96"
    etag = served.get(url, "bob").headers["etag"]
    assert served.get(url, "bob", **{"If-None-Match": etag}).status_code == 304


# --- Libravatar ----------------------------------------------------------------------------------
@on_each_store
def test_avatar_by_md5_sha256_alias_and_normalized_address(served: Served) -> None:
    a = served.get(f"/avatar/{md5(addr('ada'))}?s=96")
    b = served.get(f"/avatar/{sha256(' Ada@CONTOSO.test ')}?s=96")
    c = served.get(f"/avatar/{md5('a.lovelace@contoso-alias.test')}?size=96")
    assert a.status_code == 200 and a.headers["x-photo-source"] == "hd"
    assert a.content == b.content == c.content
    assert a.headers["cache-control"].startswith("public")


@on_each_store
def test_avatar_sizes_made_from_master_never_upscaled(served: Served) -> None:
    h = md5(addr("ada"))
    assert dims(served.get(f"/avatar/{h}")) == (80, 80)  # the default size
    assert dims(served.get(f"/avatar/{h}?s=100")) == (100, 100)
    assert dims(served.get(f"/avatar/{h}?s=2048")) == (648, 648)
    assert dims(served.get(f"/avatar/{h.upper()}.jpg?s=1")) == (1, 1)
    first = served.get(f"/avatar/{h}?s=77")
    assert served.get(f"/avatar/{h}?s=77").content == first.content  # made once, cached


@on_each_store
def test_avatar_defaults(served: Served) -> None:
    unknown = md5("nobody@elsewhere.test")
    assert served.get(f"/avatar/{unknown}?d=404").status_code == 404
    for d in ("mp", "mm", "identicon", "retro", "blank", "initials"):
        r = served.get(f"/avatar/{unknown}?d={d}&s=50&name=Zoe+Quinn")
        assert r.status_code == 200 and dims(r) == (50, 50), d
        assert r.headers["x-photo-source"] == "default"
    allowed = served.get(f"/avatar/{unknown}?d={ALLOWED_DEFAULT}x.png")
    assert allowed.status_code == 302 and allowed.headers["location"] == ALLOWED_DEFAULT + "x.png"
    assert served.get(f"/avatar/{unknown}?d=https://evil.example/x.png").status_code == 400
    assert served.get(f"/avatar/{unknown}?d=bogus").status_code == 400
    forced = served.get(f"/avatar/{md5(addr('ada'))}?f=y&d=identicon")
    assert forced.headers["x-photo-source"] == "default"
    assert served.get(f"/avatar/{md5(addr('fay'))}").status_code == 302


def test_avatar_never_serves_directory_only_photo_outside(served: Served) -> None:
    directory = served.get(f"/v1/users/{addr('cy')}/photo", "bob").content
    for viewer in (None, partner_jwt(served)):
        r = served.get(f"/avatar/{md5(addr('cy'))}?s=80", viewer)
        assert r.content != directory
        assert r.headers["x-photo-source"] == "default"
    inside = served.get(f"/avatar/{md5(addr('cy'))}", "bob")
    assert inside.content == directory
    assert directory == directory_jpeg()  # (the fixture's bytes, re-encoded once)


# --- auth ----------------------------------------------------------------------------------------
def test_partner_jwts_hs256_rs256_es256(served: Served) -> None:
    tokens = [
        partner_jwt(served),
        partner_jwt(
            served, iss="rsa.example", sub="r@rsa.example", key=served.rsa_key, alg="RS256"
        ),
        partner_jwt(served, iss="ec.example", sub="e@ec.example", key=served.ec_key, alg="ES256"),
    ]
    for token in tokens:
        who = served.get("/v1/whoami", token).json()
        assert who["kind"] == "partner"
        assert served.get(f"/v1/users/{addr('ada')}/photo", token).status_code == 200
        assert served.get(f"/v1/users/{addr('bob')}/photo", token).status_code == 404
        assert (
            served.get(f"/v1/users/{addr('ada')}/photo", token)
            .headers["cache-control"]
            .startswith("private")
        )


def test_bad_partner_jwts_are_401(served: Served) -> None:
    bad = {
        "expired": partner_jwt(served, exp=time.time() - 120),
        "audience": partner_jwt(served, aud="other.test"),
        "issuer": partner_jwt(served, iss="stranger.example", sub="s@stranger.example"),
        "signature": partner_jwt(served, key="x" * 48),
        "subject": partner_jwt(served, sub="ceo@contoso.test"),
        "algorithm": partner_jwt(served, iss="rsa.example", sub="r@rsa.example", key="x" * 48),
    }
    for why, token in bad.items():
        r = served.get(f"/v1/users/{addr('ada')}/photo", token)
        assert r.status_code == 401, why
        assert r.headers["www-authenticate"] == "Bearer"
        assert token not in r.text


def test_bad_tokens_are_401_on_every_surface(served: Served) -> None:
    for path in (
        f"/v1/users/{addr('ada')}/photo",
        f"/v1.0/users/{addr('ada')}/photo",
        f"/avatar/{md5(addr('ada'))}",
        "/v1/whoami",
        f"/ews/Exchange.asmx/s/GetUserPhoto?email={addr('ada')}&size=HR48x48",
    ):
        for header in ("Bearer upt_nope", "Basic YTpi", "Bearer", "Bearer a.b.c"):
            r = served.client.get(path, headers={"Authorization": header})
            assert r.status_code == 401, (path, header)
    assert served.get("/v1/whoami", "admin").json()["kind"] == "admin"
    assert served.get("/v1/whoami").json()["kind"] == "anonymous"


@on_each_store
def test_changes_from_another_process_show_within_a_second(served: Served, run_cli) -> None:
    path = f"/v1/users/{addr('oz')}/photo?size=48"
    assert served.get(path).status_code == 200
    env_home = str(served.home)
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "userphoto"
    subprocess.run(
        [str(cli), "user", "set", addr("oz"), "--visibility", "organization"],
        env={**os.environ, "USERPHOTO_HOME": env_home},
        check=True,
        capture_output=True,
    )
    took = served.wait_for(lambda: served.get(path).status_code == 404)
    assert took < 1.0
    app = served.app()
    try:
        app.photos.set(addr("pam"), portrait(9, 200, 200))
    finally:
        app.close()
    took = served.wait_for(
        lambda: (
            served.get(f"/v1/users/{addr('pam')}/photo", "bob").headers.get("x-photo-source")
            == "hd"
        )
    )
    assert took < 1.0


@on_each_store
def test_revoked_token_stops_working_within_a_second(served: Served) -> None:
    app = served.app()
    try:
        from userphoto import auth

        record, token = auth.create_token(app.store, addr("pam"))
        # a new token is known within a second too (the poller reloads credentials)
        served.wait_for(lambda: served.get("/v1/whoami", token).status_code == 200)
        assert served.get("/v1/whoami", token).json()["kind"] == "member"
        app.store.delete_token(record.id)
    finally:
        app.close()
    assert served.wait_for(lambda: served.get("/v1/whoami", token).status_code == 401) < 1.0
