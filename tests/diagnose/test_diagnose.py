"""The troubleshooter, one scenario per cause: reproduce it, check the verdict and the printed
fix, apply the fix exactly as printed, and see the photo show for that viewer.

State is built through the store and the CLI; directory causes run against a real slapd in
test_diagnose_directory.py, and token causes over real HTTP in test_diagnose_http.py.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from tests.support.images import encode
from userphoto import imaging
from userphoto.app import App
from userphoto.cli import cli
from userphoto.config import Settings
from userphoto.model import Account, DirectoryThumbnail, Picture, User, Visibility

ADDR = "ada@contoso.example"
Cli = Callable[..., str]


@pytest.fixture
def photo_file(tmp_path: Path) -> str:
    path = tmp_path / "ada.jpg"
    path.write_bytes(encode(Image.new("RGB", (800, 700), (30, 90, 200)), "JPEG"))
    return str(path)


@pytest.fixture
def sh(home: Path) -> Cli:
    """Run a userphoto command in-process (the same click commands as the entry point)."""
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=not ok)
        if ok:
            want = diagnose_exit(args, result.output)
            assert result.exit_code == want, f"userphoto {' '.join(args)}: {result.output}"
            return result.output
        assert result.exit_code != 0
        return result.output + str(result.exception or "")

    return run


def fresh(home: Path) -> App:
    return App(Settings.load(home))


@pytest.fixture
def ada(home: Path) -> User:
    app = fresh(home)
    user = app.store.add_user(User(id="ada", address=ADDR, display_name="Ada Lovelace"))
    app.store.add_user(User(id="bob", address="bob@contoso.example", display_name="Bob"))
    app.close()
    return user


def diagnose_exit(args: tuple[str, ...], output: str) -> int:
    """diagnose exits 1 when it reports an error-level cause (and only then)."""
    if args[0] != "diagnose":
        return 0
    errors = '"errors": 0' not in output if "--json" in args else "[error" in output
    return 1 if errors else 0


def verdict(sh: Cli, target: str, *args: str) -> dict:
    return json.loads(sh("diagnose", target, *args, "--json"))


def codes(v: dict) -> list[str]:
    return [c["code"] for c in v["causes"]]


def cause(v: dict, code: str) -> dict:
    return next(c for c in v["causes"] if c["code"] == code)


def apply_fix(
    sh: Cli, commands: list[str], photo: str, url: str = "https://img.example/a.jpg"
) -> None:
    """Run each printed command as printed, with FILE and URL filled in."""
    assert commands, "a fix must be printed"
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "userphoto", command
        sh(*[photo if a == "FILE" else url if a == "URL" else a for a in args[1:]])


def all_fixes(v: dict) -> list[str]:
    return [command for c in v["causes"] for command in c["fix"]]


def shows(v: dict, source: str = "hd") -> bool:
    return v["sees"]["source"] == source and v["symptom"] is None


def visible(v: dict, source: str) -> bool:
    """A photo shows, maybe not in HD (a directory thumbnail is 96 px)."""
    return v["sees"]["source"] == source and v["symptom"] in (
        None,
        {"code": "no_hd_photo", "title": v["symptom"] and v["symptom"]["title"]},
    )


def put_directory_photo(home: Path, user_id: str, colour=(200, 40, 40), problem=None) -> None:
    jpeg, w, h = imaging.reencode_directory_photo(
        encode(Image.new("RGB", (96, 96), colour), "JPEG")
    )
    app = fresh(home)
    app.store.put_directory_thumbnail(
        DirectoryThumbnail(
            user_id, None if problem else jpeg, "raw", len(jpeg), w, h, problem, datetime.now(UTC)
        )
    )
    app.close()


def update(home: Path, user_id: str, **fields) -> None:
    app = fresh(home)
    user = app.store.find_user(user_id)
    assert user is not None
    for key, value in fields.items():
        setattr(user, key, value)
    app.store.update_user(user)
    app.close()


# --- symptom 1: the user can't see their own photo ---------------------------------------------
def test_no_photo_uploaded(sh: Cli, ada: User, photo_file: str) -> None:
    v = verdict(sh, ADDR, "--viewer", ADDR)
    assert v["symptom"]["code"] == "own_photo_not_shown"
    assert v["sees"]["source"] == "default"
    assert codes(v) == ["no_photo"]
    assert cause(v, "no_photo")["fix"] == [f"userphoto set {ADDR} FILE"]
    apply_fix(sh, cause(v, "no_photo")["fix"], photo_file)
    assert shows(verdict(sh, ADDR, "--viewer", ADDR))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (encode(Image.new("RGB", (30, 30)), "PNG"), ["30×30", "48×48"]),
        (b"<html><body>me.jpg</body></html>", ["HTML", "JPEG, PNG"]),
        (encode(Image.new("RGB", (100, 100)), "BMP"), ["BMP"]),
        (
            encode(Image.effect_noise((500, 500), 80).convert("RGB"), "PNG"),
            ["larger than the 64 KB limit"],
        ),
    ],
)
def test_upload_rejected_names_the_limit(
    sh: Cli,
    ada: User,
    photo_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: bytes,
    words: list[str],
) -> None:
    monkeypatch.setenv("USERPHOTO_LIMITS_MAX_BYTES", str(64 * 1024))
    bad = tmp_path / "me.jpg"
    bad.write_bytes(data)
    assert words[0] in sh("set", ADDR, str(bad), ok=False)
    v = verdict(sh, ADDR, "--viewer", ADDR)
    assert v["symptom"]["code"] == "own_photo_not_shown"
    rejected = cause(v, "upload_rejected")
    assert all(w in rejected["message"] for w in words), rejected["message"]
    apply_fix(sh, rejected["fix"], photo_file)
    v = verdict(sh, ADDR, "--viewer", ADDR)
    assert shows(v) and "upload_rejected" not in codes(v)


@pytest.mark.parametrize("account", ["disabled", "absent"])
def test_account_unavailable(sh: Cli, ada: User, photo_file: str, account: str) -> None:
    sh("user", "set", ADDR, "--account", account)
    v = verdict(sh, ADDR, "--viewer", ADDR)
    assert v["symptom"]["code"] == "own_photo_not_shown"
    found = cause(v, "account_unavailable")
    assert account in found["message"] and "mailbox unavailable" in found["message"]
    # Two causes, each with its own fix, applied in the order printed.
    assert found["fix"] == [f"userphoto user set {ADDR} --account hd"]
    assert cause(v, "no_photo")["fix"] == [f"userphoto set {ADDR} FILE"]
    apply_fix(sh, all_fixes(v), photo_file)
    assert shows(verdict(sh, ADDR, "--viewer", ADDR))


def test_self_service_disabled(
    sh: Cli, ada: User, photo_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERPHOTO_POLICY_SELF_SERVICE", "false")
    v = verdict(sh, ADDR, "--viewer", ADDR)
    found = cause(v, "self_service_disabled")
    assert "SetPhotoEnabled" in found["message"] and "self_service" in found["advice"]
    apply_fix(sh, found["fix"], photo_file)  # the administrator uploads it
    assert shows(verdict(sh, ADDR, "--viewer", ADDR))


def test_preview_never_saved(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file, "--preview")
    v = verdict(sh, ADDR, "--viewer", ADDR)
    assert v["symptom"]["code"] == "own_photo_not_shown"
    assert cause(v, "preview_not_saved")["fix"] == [f"userphoto set {ADDR} --save"]
    apply_fix(sh, cause(v, "preview_not_saved")["fix"], photo_file)
    assert shows(verdict(sh, ADDR, "--viewer", ADDR))


# --- symptom 2: others (especially external) can't see it ---------------------------------------
def test_directory_only_photo_is_invisible_to_external_viewers(
    sh: Cli, ada: User, home: Path, photo_file: str
) -> None:
    sh("partner", "add", "fabrikam.example")
    sh("user", "set", ADDR, "--visibility", "everyone")
    put_directory_photo(home, "ada")
    assert visible(verdict(sh, ADDR), "directory")  # members see the directory photo
    v = verdict(sh, ADDR, "--external", "fabrikam.example")
    assert v["symptom"]["code"] == "others_cannot_see"
    found = cause(v, "directory_only")
    assert "inside the organization only" in found["message"]
    steps = {s["step"]: s for s in v["steps"]}
    assert steps["directory"]["verdict"] == "blocked"
    apply_fix(sh, found["fix"], photo_file)
    assert shows(verdict(sh, ADDR, "--external", "fabrikam.example"))


def _jwt(secret: str, iss: str = "fabrikam.example") -> str:
    import time

    import jwt

    claims = {"iss": iss, "sub": f"pia@{iss}", "aud": "contoso.example", "exp": time.time() + 300}
    return jwt.encode(claims, secret, algorithm="HS256")


def _statuses(v: dict) -> set[int]:
    return {a["status"] for a in v["surfaces"]}


def test_partner_not_configured(sh: Cli, ada: User, photo_file: str) -> None:
    """Who the viewer is, what the APIs answer and the causes agree (issue #24): without a
    token the request carries no credential and gets what an anonymous one gets; the
    partner's token is what is refused with 401 until the partner is added."""
    sh("set", ADDR, photo_file)
    sh("user", "set", ADDR, "--visibility", "everyone")
    v = verdict(sh, ADDR, "--external", "fabrikam.example")
    assert "fabrikam.example" in v["viewer"] and "carries no credential" in v["viewer"]
    assert "anonymous" in v["viewer"]
    assert v["sees"]["source"] == "hd" and _statuses(v) == {200}  # what --anonymous gets
    anonymous = verdict(sh, ADDR, "--anonymous")
    assert v["surfaces"] == anonymous["surfaces"] and v["steps"] == anonymous["steps"]
    found = cause(v, "partner_not_configured")
    assert "401" in found["message"] and "anonymous viewers" in found["message"]
    assert found["fix"] == ["userphoto partner add fabrikam.example"]

    # With the partner's token: refused (401), and said so in all three places.
    token = _jwt("fabrikam's own secret, long enough for HS256")
    v = verdict(sh, ADDR, "--external", "fabrikam.example", "--token", token)
    assert v["symptom"]["code"] == "others_cannot_see" and v["sees"]["source"] == "none"
    assert "token is refused" in v["viewer"] and _statuses(v) == {401}
    refused = cause(v, "token_invalid")
    assert refused["fix"] == ["userphoto partner add fabrikam.example"]

    secret = sh("partner", "add", "fabrikam.example").splitlines()[0].strip()
    v = verdict(sh, ADDR, "--external", "fabrikam.example", "--token", _jwt(secret))
    assert shows(v) and _statuses(v) == {200}
    assert v["viewer"].startswith("pia@fabrikam.example, a user of partner fabrikam.example")
    assert not [c for c in v["causes"] if c["level"] == "error"]
    # A registered partner's user without a token: still a request without a credential.
    v = verdict(sh, ADDR, "--external", "fabrikam.example")
    assert "carries no credential" in v["viewer"] and v["surfaces"] == anonymous["surfaces"]


def test_viewer_kinds_read_as_english(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file)
    sh("user", "set", ADDR, "--visibility", "everyone")
    for args in (("--anonymous",), ("--external", "fabrikam.example"), ()):
        text = sh("diagnose", ADDR, *args)
        assert " a anonymous" not in text and " a admin" not in text, text
    assert "admits an anonymous viewer" in sh("diagnose", ADDR, "--anonymous")
    sh("user", "set", ADDR, "--visibility", "organization")
    assert "the viewer is an anonymous" in sh("diagnose", ADDR, "--anonymous")


@pytest.mark.parametrize(
    ("viewer_args", "visibility", "wanted", "code"),
    [
        (("--external", "fabrikam.example"), "organization", "everyone", "visibility"),
        (("--anonymous",), "organization", "everyone", "visibility"),
        # 'nobody' is the user's own choice: its own finding, marked as such
        (("--viewer", "bob@contoso.example"), "nobody", "organization", "visibility_nobody"),
    ],
)
def test_visibility_hides_the_photo(
    sh: Cli, ada: User, photo_file: str, viewer_args, visibility: str, wanted: str, code: str
) -> None:
    sh("partner", "add", "fabrikam.example")
    sh("set", ADDR, photo_file)
    sh("user", "set", ADDR, "--visibility", visibility)
    v = verdict(sh, ADDR, *viewer_args)
    assert v["symptom"]["code"] == "others_cannot_see" and v["sees"]["source"] == "none"
    assert cause(v, code)["fix"] == [f"userphoto user set {ADDR} --visibility {wanted}"]
    assert cause(v, code)["choice"] == (visibility == "nobody")
    apply_fix(sh, cause(v, code)["fix"], photo_file)
    assert shows(verdict(sh, ADDR, *viewer_args))


def test_hidden_picture(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file)
    sh("user", "set", ADDR, "--picture", "hidden")
    v = verdict(sh, ADDR, "--viewer", "bob@contoso.example")
    assert v["sees"]["source"] == "none"
    apply_fix(sh, cause(v, "picture_hidden")["fix"], photo_file)
    assert shows(verdict(sh, ADDR, "--viewer", "bob@contoso.example"))
    # The owner always sees their own photo, hidden or not: no false "hidden" verdict.
    sh("user", "set", ADDR, "--picture", "hidden")
    assert shows(verdict(sh, ADDR, "--viewer", ADDR))


def test_default_picture_chosen(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file)
    sh("user", "set", ADDR, "--picture", "default")
    v = verdict(sh, ADDR)
    assert v["sees"]["source"] == "default" and v["symptom"]["code"] == "others_cannot_see"
    apply_fix(sh, cause(v, "picture_default")["fix"], photo_file)
    assert shows(verdict(sh, ADDR))


def test_web_address_option_without_a_usable_address(
    sh: Cli, ada: User, home: Path, photo_file: str
) -> None:
    update(home, "ada", picture=Picture.URL, picture_url="ftp://old.example/a.jpg")
    sh("user", "set", ADDR, "--visibility", "everyone")
    v = verdict(sh, ADDR, "--anonymous")
    found = cause(v, "url_missing")
    assert found["fix"] == [f"userphoto user set {ADDR} --picture url --url URL"]
    apply_fix(sh, found["fix"], photo_file, url="https://img.example/ada.jpg")
    v = verdict(sh, ADDR, "--anonymous")
    assert shows(v, "url") and "https://img.example/ada.jpg" in v["sees"]["text"]


def test_removal_record_blocks_the_directory_fallback(
    sh: Cli, ada: User, home: Path, photo_file: str
) -> None:
    put_directory_photo(home, "ada")
    sh("set", ADDR, photo_file)
    sh("remove", ADDR)
    v = verdict(sh, ADDR, "--viewer", "bob@contoso.example")
    assert v["sees"]["source"] == "default"
    found = cause(v, "removal_record")
    assert found["fix"] == [f"userphoto remove {ADDR} --clear-record"]
    assert "removal record" in {s["step"]: s for s in v["steps"]}["directory"]["reason"]
    apply_fix(sh, found["fix"], photo_file)
    assert visible(verdict(sh, ADDR, "--viewer", "bob@contoso.example"), "directory")


def test_user_not_found_suggests_near_misses(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file)
    v = verdict(sh, "ada@contoso.exmaple")
    found = cause(v, "user_not_found")
    assert ADDR in found["message"] and v["sees"]["source"] == "none"
    listing = sh(*shlex.split(found["fix"][0])[1:])
    assert ADDR in listing
    assert shows(verdict(sh, ADDR))


# --- symptom 3: no HD photo in meetings and large views ----------------------------------------
def test_legacy_client_gets_sd_only(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file)
    v = verdict(sh, ADDR, "--client", "legacy", "--size", "240")
    assert v["symptom"]["code"] == "no_hd_photo" and v["sees"]["size"] == 96
    found = cause(v, "legacy_client")
    assert not found["fix"] and "--client hd" in found["advice"]
    # The fix is the client: the HD client gets the HD size.
    v = verdict(sh, ADDR, "--client", "hd", "--size", "240")
    assert shows(v) and v["sees"]["size"] == 240


def test_sd_only_account(sh: Cli, ada: User, photo_file: str) -> None:
    sh("user", "set", ADDR, "--account", "sd_only")
    sh("set", ADDR, photo_file)
    v = verdict(sh, ADDR, "--size", "HR240x240")
    assert v["symptom"]["code"] == "no_hd_photo" and v["sees"]["size"] == 96
    apply_fix(sh, cause(v, "sd_only")["fix"], photo_file)
    v = verdict(sh, ADDR, "--size", "HR240x240")
    assert shows(v) and v["sees"]["size"] == 240


def test_directory_thumbnail_only_for_large_views(
    sh: Cli, ada: User, home: Path, photo_file: str
) -> None:
    put_directory_photo(home, "ada")
    v = verdict(sh, ADDR, "--size", "648")
    assert v["symptom"]["code"] == "no_hd_photo" and v["sees"]["source"] == "directory"
    apply_fix(sh, cause(v, "directory_only")["fix"], photo_file)
    v = verdict(sh, ADDR, "--size", "648")
    assert shows(v) and v["sees"]["size"] == 648


def test_source_smaller_than_the_requested_size(
    sh: Cli, ada: User, photo_file: str, tmp_path: Path
) -> None:
    small = tmp_path / "small.jpg"
    small.write_bytes(encode(Image.new("RGB", (300, 300), (1, 100, 1)), "JPEG"))
    sh("set", ADDR, str(small))
    v = verdict(sh, ADDR, "--size", "360")
    assert v["symptom"]["code"] == "no_hd_photo" and v["sees"]["size"] == 240
    found = cause(v, "source_too_small")
    assert "300px" in found["message"] and "upscale" in found["message"]
    apply_fix(sh, found["fix"], photo_file)
    v = verdict(sh, ADDR, "--size", "360")
    assert shows(v) and v["sees"]["size"] == 360


def test_healthy_photo_has_nothing_to_fix(sh: Cli, ada: User, tmp_path: Path) -> None:
    from skimage import data

    # A real face (a flat colour would be a guessed crop, which diagnose notes for review).
    portrait = Image.new("RGB", (800, 700), (30, 90, 200))
    portrait.paste(Image.fromarray(data.astronaut()).resize((700, 700)), (50, 0))
    path = tmp_path / "ada-face.jpg"
    path.write_bytes(encode(portrait, "JPEG"))
    sh("set", ADDR, str(path))
    text = sh("diagnose", ADDR)
    assert "Sees: the HD photo at 648×648" in text and "Nothing to fix." in text


def test_guessed_crop_is_noted(sh: Cli, ada: User, photo_file: str) -> None:
    sh("set", ADDR, photo_file)  # a flat colour: no face, so the crop is a guess
    text = sh("diagnose", ADDR)
    assert "[info] ada@contoso.example's crop (50,0,700) was a guess: no face: centre" in text
    assert "--crop X,Y,SIZE" in text
    assert "visibility used" in " ".join(text.split())


def test_text_output_prints_steps_symptom_and_fix(sh: Cli, ada: User) -> None:
    text = sh("diagnose", ADDR, "--viewer", ADDR)
    assert "How the photo was chosen:" in text
    assert "Symptom: The user can't see their own photo" in text
    assert f"fix: userphoto set {ADDR} FILE" in text


# --- doctor ----------------------------------------------------------------------------------
def test_doctor_counts_findings_and_exits_non_zero_on_errors(
    sh: Cli, ada: User, home: Path, photo_file: str
) -> None:
    sh("demo")
    report = json.loads(sh("doctor", "--json"))
    assert report["users"] == 52 and report["errors"] == 0
    counts = {f["code"]: f["count"] for f in report["findings"]}
    assert counts["no_photo"] == 9  # 7 demo users + ada + bob
    assert counts["account_unavailable"] == 1 and counts["sd_only"] == 1
    assert counts["picture_hidden"] == 1
    assert "no_partners" in [c["code"] for c in report["organization"]]
    put_directory_photo(home, "bob", problem="not an image (it is text)")
    update(home, "ada", picture=Picture.URL, picture_url=None)
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(home), "doctor"])
    assert result.exit_code == 1
    assert "[error  ]       1  directory photo unusable" in result.output
    assert "bob@contoso.example" in result.output and "Worst offenders:" in result.output


def test_doctor_sees_directory_only_and_disagreements(
    sh: Cli, ada: User, home: Path, photo_file: str
) -> None:
    put_directory_photo(home, "ada")
    put_directory_photo(home, "bob")
    sh("set", "bob@contoso.example", photo_file)
    update(home, "bob", account=Account.HD, visibility=Visibility.EVERYONE)
    report = json.loads(sh("doctor", "--json"))
    counts = {f["code"]: f["examples"] for f in report["findings"]}
    assert counts["directory_only"] == [ADDR]
    assert counts["directory_disagrees"] == ["bob@contoso.example"]


# --- every cause in one run; no invented causes; choices; exit status ---------------------------
def test_sd_only_without_a_photo_names_both_causes(sh: Cli, ada: User, photo_file: str) -> None:
    sh("user", "set", ADDR, "--account", "sd_only")
    v = verdict(sh, ADDR, "--size", "648")
    assert {"no_photo", "sd_only"} <= set(codes(v))
    apply_fix(sh, all_fixes(v), photo_file)  # every printed fix, in the order printed
    v = verdict(sh, ADDR, "--size", "648")
    # Nothing stands between the viewer and the photo; the flat test picture has no face, so
    # its crop is noted as a guess (info), which blocks nothing.
    assert shows(v) and v["sees"]["size"] == 648 and set(codes(v)) <= {"crop_guess"}


def test_a_valid_web_address_is_not_reported_missing(sh: Cli, ada: User, photo_file: str) -> None:
    sh("user", "set", ADDR, "--picture", "url", "--url", "https://img.example/ada.jpg")
    v = verdict(sh, ADDR, "--anonymous")  # visibility 'organization' blocks it
    assert v["sees"]["source"] == "none"
    assert codes(v) == ["visibility"]
    apply_fix(sh, all_fixes(v), photo_file)
    assert shows(verdict(sh, ADDR, "--anonymous"), "url")


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        (("--picture", "hidden"), "picture_hidden"),
        (("--visibility", "nobody"), "visibility_nobody"),
    ],
)
def test_a_users_choice_is_reported_as_a_choice(
    sh: Cli, ada: User, photo_file: str, setting: tuple[str, str], code: str
) -> None:
    sh("set", ADDR, photo_file)
    sh("user", "set", ADDR, *setting)
    v = verdict(sh, ADDR, "--viewer", "bob@contoso.example")
    found = cause(v, code)
    assert found["choice"] is True and found["level"] == "info" and v["errors"] == 0
    assert "own choice" in found["advice"] and "overrides" in found["advice"]
    text = sh("diagnose", ADDR, "--viewer", "bob@contoso.example")
    assert "[info, the user's choice]" in text
    assert f"fix (overrides the user's choice): {found['fix'][0]}" in text
    assert "[error]" not in text


def test_diagnose_exits_non_zero_on_error_level_causes(
    home: Path, ada: User, photo_file: str
) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["--home", str(home), "diagnose", ADDR])
    assert ok.exit_code == 0 and "[warning]" in ok.output  # no photo: a warning, not a fault
    update(home, "ada", picture=Picture.URL, picture_url="ftp://old.example/a.jpg")
    bad = runner.invoke(cli, ["--home", str(home), "diagnose", ADDR])
    assert bad.exit_code == 1 and "[error] " in bad.output
    missing = runner.invoke(cli, ["--home", str(home), "diagnose", "nobody@contoso.example"])
    assert missing.exit_code == 1
    helptext = runner.invoke(cli, ["diagnose", "--help"]).output
    assert "Exits 1 when a cause is at error level" in helptext


@pytest.mark.parametrize("viewer", [(), ("--anonymous",)], ids=["member", "anonymous"])
@pytest.mark.parametrize("account", ["hd", "sd_only", "disabled"])
@pytest.mark.parametrize("picture", ["photo", "bad-url", "default", "hidden"])
@pytest.mark.parametrize("visibility", ["organization", "nobody"])
def test_applying_every_printed_fix_shows_the_photo_as_asked(
    sh: Cli,
    ada: User,
    home: Path,
    photo_file: str,
    viewer: tuple[str, ...],
    account: str,
    picture: str,
    visibility: str,
) -> None:
    """One run names every obstacle: its fixes, applied in order, give the 648 px HD photo
    (or the web address the fix sets)."""
    sh("user", "set", ADDR, "--account", account, "--visibility", visibility)
    if picture == "bad-url":
        update(home, "ada", picture=Picture.URL, picture_url="ftp://old.example/a.jpg")
    else:
        sh("user", "set", ADDR, "--picture", picture)
    v = verdict(sh, ADDR, *viewer, "--size", "648")
    apply_fix(sh, all_fixes(v), photo_file)
    after = verdict(sh, ADDR, *viewer, "--size", "648")
    if picture == "bad-url":
        assert shows(after, "url"), after
    else:
        assert shows(after) and after["sees"]["size"] == 648, after
