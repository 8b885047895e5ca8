"""One catalogue of findings: `diagnose`, `doctor`, the admin listing's "Problems" filter and
the web troubleshooter agree on each finding's level and fix text, because all read
`userphoto.findings`. Each finding is produced for real (store, CLI, a real server over HTTP),
and every catalogue entry is accounted for: shown here by every surface that can show it, or
named below with the test that produces it (those need a live directory or a bearer token).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from markupsafe import escape

from tests.support.images import encode, two_tone
from tests.support.server import addr, directory_jpeg, start_server, stop_server
from userphoto import auth
from userphoto.app import App
from userphoto.cli import cli
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.directory import status as directory_status
from userphoto.errors import UserPhotoError
from userphoto.findings import (
    ADDRESS,
    CATALOGUE,
    PROBLEM_CODES,
    Level,
    cause,
    every_user_facts,
    user_findings,
)
from userphoto.model import Account, DirectoryThumbnail, Picture, User, Visibility
from userphoto.store import StatusFilter, StatusQuery

# Who shows which finding, and the diagnose options under which it stands in the way.
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "directory_thumbnail_problem": ("broken", ()),
    "url_missing": ("badurl", ()),
    "no_photo": ("nophoto", ()),
    "directory_only": ("dironly", ("--size", "648")),
    "removal_record": ("removed", ()),
    "directory_disagrees": ("disagree", ()),
    "account_unavailable": ("disabled", ()),
    "source_too_small": ("small", ()),
    "preview_not_saved": ("preview", ()),
    "sd_only": ("sdonly", ("--size", "648")),
    "picture_hidden": ("hidden", ()),
    "picture_default": ("default", ()),
    "self_service_disabled": ("nophoto", ("--viewer", addr("nophoto"))),
    "crop_guess": ("guessed", ()),
    "directory_gone": ("gone", ()),
    "visibility_nobody": ("private", ("--viewer", addr("fine"))),
    "visibility": ("fine", ("--external", "fabrikam.example")),
    "partner_not_configured": ("open", ("--external", "fabrikam.example")),
    "legacy_client": ("fine", ("--client", "legacy", "--size", "240")),
    "user_not_found": ("nosuch", ()),
    "upload_rejected": ("rejected", ("--viewer", addr("rejected"))),
    "directory_unreachable": ("synced", ()),  # its directory (a closed port) cannot be asked
}
# Organization findings: the doctor's own, checked against the catalogue below.
ORGANIZATION = ("self_service_disabled", "no_partners", "sync_failed")
# Produced by other tests (a live directory to ask; a bearer token, which the web form lacks).
ELSEWHERE = {
    "sync_lag": "tests/diagnose/test_diagnose_directory.py",
    "token_invalid": "tests/diagnose/test_diagnose_http.py",
}
# What the doctor's per-user rule can say (findings.user_findings over every facts value).
DOCTOR_CODES = {code for f in every_user_facts() for code in user_findings(f)}


@dataclass
class Org:
    home: Path
    base: str
    admin: str


def thumbnail(user_id: str, *, broken: bool = False) -> DirectoryThumbnail:
    jpeg = directory_jpeg(96, 96)
    return DirectoryThumbnail(
        user_id,
        None if broken else jpeg,
        "raw-" + user_id,
        len(jpeg),
        96,
        96,
        "thumbnailPhoto is not an image" if broken else None,
        datetime.now(UTC),
    )


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    home = tmp_path_factory.mktemp("findings-home")
    env = {
        "USERPHOTO_POLICY_SELF_SERVICE": "false",
        "USERPHOTO_DIRECTORY_URI": "ldap://127.0.0.1:9",  # nothing listens: unreachable
        "USERPHOTO_DIRECTORY_BASE_DN": "dc=contoso,dc=test",
    }
    import os

    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    app = App(Settings.load(home))
    app.settings.write_default()
    try:
        store, photos = app.store, app.photos
        for local in {who for who, _ in CASES.values()} - {"nosuch"}:
            user = User(id=f"id-{local}", address=addr(local), display_name=local.title())
            if local == "badurl":
                user.picture, user.picture_url = Picture.URL, "ftp://old.example/p.jpg"
            elif local == "disabled":
                user.account = Account.DISABLED
            elif local == "sdonly":
                user.account = Account.SD_ONLY
            elif local == "hidden":
                user.picture = Picture.HIDDEN
            elif local == "default":
                user.picture = Picture.DEFAULT
            elif local == "synced":
                user.source, user.attributes = "directory", {"dn": "uid=synced,dc=contoso,dc=test"}
            elif local == "gone":
                user.directory_gone = True
            elif local == "private":
                user.visibility = Visibility.NOBODY
            elif local == "open":
                user.visibility = Visibility.EVERYONE
            store.add_user(user)
            if local in ("removed", "disagree", "sdonly", "hidden", "default", "fine"):
                photos.set(user.id, portrait(3, 700, 700))
            if local in ("private", "open"):
                photos.set(user.id, portrait(3, 700, 700))
            if local == "guessed":  # no face to find: a centre crop, a guess
                photos.set(user.id, encode(two_tone(700, 700), "JPEG"))
            if local == "rejected":
                with pytest.raises(UserPhotoError):
                    photos.set(user.id, b"not an image at all")
            if local == "small":
                photos.set(user.id, portrait(3, 200, 200))
            if local == "preview":
                photos.set(user.id, portrait(3, 700, 700), preview=True)
            if local in ("dironly", "removed", "disagree"):
                store.put_directory_thumbnail(thumbnail(user.id))
            if local == "broken":
                store.put_directory_thumbnail(thumbnail(user.id, broken=True))
        photos.remove("id-removed")
        failed = directory_status.SyncReport("delta", error="the directory refused the bind")
        directory_status.record(store, failed)
        admin = auth.create_token(store, "root@contoso.test", admin=True)[1]
    finally:
        app.close()
    proc, base = start_server(home, env)
    try:
        yield Org(home, base, admin)
    finally:
        stop_server(proc)
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def filled_from(templates: tuple[str, ...], texts: list[str]) -> bool:
    """`texts` are `templates` with their remaining fields ({wanted}, ...) filled in."""
    if len(templates) != len(texts):
        return False
    for template, text in zip(templates, texts, strict=True):
        pattern = re.sub(r"\\\{\w+\\\}", ".+", re.escape(template))
        if not re.fullmatch(pattern, text):
            return False
    return True


def run(org: Org, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["--home", str(org.home), *args, "--json"])
    return json.loads(result.output)


def signed_in(org: Org) -> httpx.Client:
    http = httpx.Client(base_url=org.base, timeout=10, follow_redirects=True)
    form = http.get("/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    r = http.post("/signin", data={"csrf": csrf[1], "token": org.admin, "next": "/admin"})
    assert r.status_code == 200 and "/admin" in str(r.url)
    return http


def test_every_finding_fills_its_templates() -> None:
    values = {
        "address": addr("x"),
        "domain": "fabrikam.example",
        "target": "x",
        "hint": "",
        "search": "x",
        "wanted": 648,
        "current": "",
        "account": "disabled",
        "removed": "",
        "when": "2026-01-01",
        "via": "cli",
        "detail": "too small",
        "sd_max": 96,
        "crop": 200,
        "largest": 120,
        "width": 96,
        "live": "2026-01-01 00:00:00",
        "seen": "never",
        "mode": "full",
        "reason": "expired",
        "advice": "Ask for a new token.",
    }
    for code, finding in CATALOGUE.items():
        filled = cause(code, **values)
        assert filled.level is finding.level and filled.choice is finding.choice
        for text in (filled.message, filled.advice, *filled.fix):
            assert "{" not in text, (code, text)
        if finding.choice:  # a choice's fix says plainly that it overrides the user
            assert finding.fix and "overrides" in filled.advice


def test_every_catalogue_entry_is_accounted_for() -> None:
    shown_here = set(CASES) | set(ORGANIZATION)
    assert shown_here.isdisjoint(ELSEWHERE)
    assert shown_here | set(ELSEWHERE) == set(CATALOGUE)
    assert set(CASES) >= DOCTOR_CODES  # every per-user doctor finding is compared below
    for code, test in ELSEWHERE.items():
        assert f'"{code}"' in (Path(__file__).parents[2] / test).read_text(), code


def test_diagnose_doctor_filter_and_troubleshooter_agree(org: Org) -> None:
    report = run(org, "doctor")
    doctor = {f["code"]: f for f in report["findings"]}
    doctor |= {c["code"]: c for c in report["organization"]}
    # The doctor's organization findings: the catalogue's level and fix.
    for code in ORGANIZATION:
        assert doctor[code]["level"] == CATALOGUE[code].level.value, code
        assert doctor[code]["fix"] == list(CATALOGUE[code].fixes(address=ADDRESS)), code
    problems: set[str] = set()
    http = signed_in(org)
    try:
        for code, (who, options) in CASES.items():
            finding = CATALOGUE[code]
            address = addr(who)
            # diagnose: the catalogue's level and fix, for this user
            verdict = run(org, "diagnose", address, *options)
            found = {c["code"]: c for c in verdict["causes"]}
            assert code in found, (code, verdict["causes"])
            said = found[code]
            assert said["level"] == finding.level.value
            assert filled_from(finding.fixes(address=address), said["fix"]), code
            # doctor: the same level, the same fix with ADDRESS for the user
            if code in DOCTOR_CODES or code in ORGANIZATION:
                assert code in doctor, code
                assert doctor[code]["level"] == said["level"]
                assert [f.replace(ADDRESS, address) for f in doctor[code]["fix"]] == said["fix"]
            if code in PROBLEM_CODES:
                problems.add(address)
            # the web troubleshooter: the same finding, level and fix on the page
            query = {"target": address, "kind": "member"}
            pairs = dict(zip(options[::2], options[1::2], strict=True))
            if "--size" in pairs:
                query["size"] = pairs["--size"]
            if "--viewer" in pairs:
                query["viewer"] = pairs["--viewer"]
            if "--external" in pairs:
                query |= {"kind": "external", "external": pairs["--external"]}
            if "--client" in pairs:
                query["client"] = pairs["--client"]
            page = http.get("/admin/troubleshoot", params=query).text
            items = re.findall(r'<li class="level-(\w+)">(.*?)</li>', page, re.S)
            (item,) = [lv_body for lv_body in items if escape(said["message"]) in lv_body[1]]
            assert item[0] == said["level"], code
            for command in said["fix"]:
                assert f'<code class="fix">{escape(command)}</code>' in item[1]
            if finding.choice:
                assert "overrides" in item[1]
        # the admin listing's Problems filter: exactly the users with a problem finding
        listing = http.get("/admin", params={"filter": "problems"}).text
        listed = set(re.findall(r"[a-z]+@contoso\.test", listing)) - {"root@contoso.test"}
        assert listed == problems, (listed, problems)
    finally:
        http.close()
    app = App(Settings.load(org.home))
    try:
        rows = app.store.list_photo_status(StatusQuery(filter=StatusFilter.PROBLEMS, limit=100))
    finally:
        app.close()
    assert {r.user.address for r in rows} == problems
    # What is an error in one place is an error everywhere: doctor exits 1 on them.
    assert report["errors"] == sum(
        doctor[c].get("count", 1) for c in doctor if CATALOGUE[c].level is Level.ERROR
    )
