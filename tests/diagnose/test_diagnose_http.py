"""Troubleshooter causes about credentials, over real HTTP: a partner's user is refused (401),
the admin asks the server why, applies the printed fix, and the same request then gets the
photo. Also the admin API's own rules."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from PIL import Image

from tests.conftest import BIN
from tests.support.images import encode
from tests.support.server import Served, addr

TARGET = addr("ada")  # visibility everyone, HD photo


def partner_jwt(
    secret: str,
    *,
    iss: str = "partner.example",
    aud: str = "contoso.test",
    exp: float | None = None,
) -> str:
    claims = {"iss": iss, "sub": f"pia@{iss}", "aud": aud, "exp": int(exp or time.time() + 300)}
    return jwt.encode(claims, secret, algorithm="HS256")


def photo_status(s: Served, token: str) -> int:
    return s.get(f"/v1/users/{TARGET}/photo?size=96", token).status_code


def ask(s: Served, token: str, external: str) -> dict:
    r = s.client.get(
        "/v1/admin/diagnose",
        params={"target": TARGET, "external": external},
        headers={**s.headers("admin"), "X-Diagnose-Token": token},
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def run_fix(s: Served, command: str) -> str:
    args = shlex.split(command)
    assert args[0] == "userphoto"
    out = subprocess.run(
        [str(BIN / "userphoto"), "--home", str(s.home), *args[1:]],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def only_cause(v: dict) -> dict:
    assert v["symptom"]["code"] == "others_cannot_see"
    assert v["sees"]["source"] == "none" and "401" in v["sees"]["text"]
    (found,) = [c for c in v["causes"] if c["code"] == "token_invalid"]
    return found


def test_unknown_issuer_is_fixed_by_adding_the_partner(served: Served) -> None:
    token = partner_jwt("their-own-secret-not-the-one-we-know", iss="latecomer.example")
    assert photo_status(served, token) == 401
    cause = only_cause(ask(served, token, "latecomer.example"))
    assert "not a federation partner" in cause["message"]
    assert cause["fix"] == ["userphoto partner add latecomer.example"]
    secret = run_fix(served, cause["fix"][0]).strip()  # printed once, for the partner
    fresh = partner_jwt(secret, iss="latecomer.example")
    served.wait_for(lambda: photo_status(served, fresh) == 200)
    verdict = ask(served, fresh, "latecomer.example")
    assert verdict["sees"]["source"] == "hd" and verdict["symptom"] is None


def test_expired_token_is_explained(served: Served) -> None:
    token = partner_jwt(served.partner_secret, exp=time.time() - 3600)
    assert photo_status(served, token) == 401
    cause = only_cause(ask(served, token, "partner.example"))
    assert "expired" in cause["message"] and "new token" in cause["advice"]
    fresh = partner_jwt(served.partner_secret)  # what the advice asks the partner to do
    assert photo_status(served, fresh) == 200
    assert ask(served, fresh, "partner.example")["sees"]["source"] == "hd"


def test_wrong_audience_is_explained(served: Served) -> None:
    token = partner_jwt(served.partner_secret, aud="somewhere-else.example")
    assert photo_status(served, token) == 401
    cause = only_cause(ask(served, token, "partner.example"))
    assert "audience" in cause["message"] and "contoso" not in cause["message"]
    assert "aud must be one of this organization's mail domains" in cause["advice"]
    fresh = partner_jwt(served.partner_secret, aud="contoso.test")
    assert photo_status(served, fresh) == 200


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("bob", 403), ("not-a-token", 401)])
def test_admin_api_is_for_admins_only(served: Served, who: str | None, status: int) -> None:
    for path in ("/v1/admin/diagnose?target=" + TARGET, "/v1/admin/doctor"):
        r = served.get(path, who)
        assert r.status_code == status, (path, r.text)
        assert "error" in r.json()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", "target"),
        (f"target={TARGET}&size=97", "valid"),
        (f"target={TARGET}&client=lync2010", "client"),
        (f"target={TARGET}&viewer={addr('bob')}&anonymous=1", "at most one"),
    ],
)
def test_admin_diagnose_rejects_bad_queries(served: Served, query: str, words: str) -> None:
    r = served.get("/v1/admin/diagnose?" + query, "admin")
    assert r.status_code == 400 and words in r.json()["error"]["message"]


def test_admin_diagnose_and_doctor_answer_as_the_cli_does(served: Served) -> None:
    r = served.get(f"/v1/admin/diagnose?target={addr('cy')}&external=partner.example", "admin")
    v = r.json()
    assert v["sees"]["source"] == "default"  # external: the directory photo is not theirs
    assert "directory_only" in [c["code"] for c in v["causes"]]
    cli = subprocess.run(
        [
            str(BIN / "userphoto"),
            "--home",
            str(served.home),
            "diagnose",
            addr("cy"),
            "--external",
            "partner.example",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(cli.stdout)["causes"] == v["causes"]
    report = served.get("/v1/admin/doctor", "admin").json()
    assert report["users"] >= 16
    assert {f["code"] for f in report["findings"]} >= {"directory_only", "no_photo"}


def test_self_service_disabled_over_http(served_policy_off: Served, tmp_path: Path) -> None:
    s = served_policy_off
    kim = addr("kim")  # no photo yet
    jpeg = encode(Image.new("RGB", (700, 700), (200, 100, 0)), "JPEG")
    r = s.request(
        "PUT", "/v1.0/me/photo/$value", "kim", content=jpeg, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 403  # the member may not change their own photo
    r = s.client.get(
        "/v1/admin/diagnose", params={"target": kim, "viewer": kim}, headers=s.headers("admin")
    )
    v = r.json()
    assert v["symptom"]["code"] == "own_photo_not_shown"
    (cause,) = [c for c in v["causes"] if c["code"] == "self_service_disabled"]
    photo = tmp_path / "kim.jpg"
    photo.write_bytes(jpeg)
    for command in cause["fix"]:  # an administrator uploads it
        run_fix(s, command.replace("FILE", str(photo)))
    s.wait_for(
        lambda: s.get(f"/v1/users/{kim}/photo?size=96", "kim").headers.get("x-photo-source") == "hd"
    )


@pytest.mark.parametrize("external", ["partner.example", "stranger.example"])
def test_external_viewer_without_a_token_is_predicted_as_the_server_answers(
    served: Served, external: str
) -> None:
    """`diagnose --external DOMAIN` without --token: the request carries no credential, so
    the prediction is what the running server answers a request without one (issue #24:
    it used to predict 401 everywhere while calling the viewer anonymous)."""
    import hashlib

    for local in ("ada", "bob", "cy", "dee", "fay"):
        address = addr(local)
        r = served.client.get(
            "/v1/admin/diagnose",
            params={"target": address, "external": external},
            headers=served.headers("admin"),
        )
        v = r.json()
        assert "carries no credential" in v["viewer"], v["viewer"]
        known = external == "partner.example"
        assert ("partner_not_configured" in [c["code"] for c in v["causes"]]) is not known
        md5 = hashlib.md5(address.encode()).hexdigest()
        for answer in v["surfaces"]:
            path = answer["request"].removeprefix("GET ").replace(f"MD5({address})", md5)
            real = served.client.get(path, follow_redirects=False)  # no credential at all
            assert real.status_code == answer["status"], (local, answer, real.status_code)
