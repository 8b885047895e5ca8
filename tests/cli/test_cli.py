"""The command line through its real entry point (a subprocess), as an administrator uses it;
on both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import RunCli
from tests.support.images import encode, jpeg_with_orientation, png_header_bomb

pytestmark = pytest.mark.usefixtures("store_env")


@pytest.fixture
def ada(run_cli: RunCli) -> str:
    run_cli("init")
    run_cli(
        "user",
        "add",
        "ada@contoso.example",
        "--name",
        "Ada Lovelace",
        "--alias",
        "al@contoso.example",
    )
    return "ada@contoso.example"


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_init_creates_config_and_store(run_cli: RunCli, home: Path, store_env: str) -> None:
    out = run_cli("init").stdout.decode()
    assert (home / "userphoto.toml").exists()
    assert (home / "userphoto.db").exists() == store_env.startswith("sqlite")
    assert "created" in out and f"store:       {store_env}" in out
    assert "kept" in run_cli("init").stdout.decode()


def test_set_get_remove_round_trip(run_cli: RunCli, ada: str, tmp_path: Path) -> None:
    src = write(tmp_path, "ada.jpg", encode(Image.new("RGB", (900, 700), (200, 20, 20)), "JPEG"))
    out = run_cli("set", ada, src).stdout.decode()
    assert "saved" in out and "648" in out
    target = tmp_path / "out.jpg"
    out = run_cli(
        "get", "al@contoso.example", "--size", "hr240X240", "-o", str(target)
    ).stdout.decode()
    assert "240×240" in out
    with Image.open(target) as got:
        assert got.size == (240, 240)
    run_cli("remove", ada)
    proc = run_cli("get", ada, "-o", str(target), check=False)
    assert proc.returncode == 1 and b"no photo" in proc.stderr
    assert b"removal record" in run_cli("user", "show", ada).stdout
    assert b"cleared" in run_cli("remove", ada, "--clear-record").stdout


def test_get_to_standard_output_writes_the_jpeg_bytes(
    run_cli: RunCli, ada: str, tmp_path: Path
) -> None:
    src = write(tmp_path, "ada.jpg", encode(Image.new("RGB", (300, 300), (20, 20, 200)), "JPEG"))
    run_cli("set", ada, src)
    target = tmp_path / "out.jpg"
    run_cli("get", ada, "--size", "96", "-o", str(target))
    piped = run_cli("get", ada, "--size", "96", "-o", "-").stdout
    assert piped == target.read_bytes() and piped.startswith(b"\xff\xd8")


def test_preview_save_and_cancel(run_cli: RunCli, ada: str, tmp_path: Path) -> None:
    red = write(tmp_path, "r.png", encode(Image.new("RGB", (300, 300), (220, 0, 0)), "PNG"))
    blue = write(tmp_path, "b.png", encode(Image.new("RGB", (300, 300), (0, 0, 220)), "PNG"))
    run_cli("set", ada, red)
    assert b"preview stored" in run_cli("set", ada, blue, "--preview").stdout
    preview = tmp_path / "p.jpg"
    run_cli("get", ada, "--preview", "-o", str(preview))
    assert Image.open(preview).convert("RGB").getpixel((5, 5))[2] > 180
    run_cli("set", ada, "--cancel")
    proc = run_cli("set", ada, "--save", check=False)
    assert proc.returncode == 1 and b"no preview" in proc.stderr.lower()
    run_cli("set", ada, blue, "--preview")
    run_cli("set", ada, "--save")
    saved = tmp_path / "s.jpg"
    run_cli("get", ada, "--size", "96", "-o", str(saved))
    assert Image.open(saved).convert("RGB").getpixel((5, 5))[2] > 180


def test_crop_option(run_cli: RunCli, ada: str, tmp_path: Path) -> None:
    src = write(tmp_path, "o.jpg", jpeg_with_orientation(6))  # upright: red on top
    assert b"crop 0,0,100" in run_cli("set", ada, src, "--crop", "0,0,100").stdout
    out = tmp_path / "o-out.jpg"
    run_cli("get", ada, "-o", str(out))
    r, _g, b = Image.open(out).convert("RGB").getpixel((50, 50))
    assert r > 200 and b < 60
    proc = run_cli("set", ada, src, "--crop", "1,2", check=False)
    assert proc.returncode == 2 and b"X,Y,SIZE" in proc.stderr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", b"empty"),
        (b"<html><body>hi</body></html>", b"HTML"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"SVG"),
        (png_header_bomb(), b"too many pixels"),
        (encode(Image.new("RGB", (20, 20)), "PNG"), b"48\xc3\x9748"),
        (encode(Image.effect_noise((400, 400), 50).convert("RGB"), "JPEG")[:3000], b"damaged"),
    ],
)
def test_bad_input_gives_one_line_and_no_traceback(
    run_cli: RunCli, ada: str, tmp_path: Path, data: bytes, message: bytes
) -> None:
    proc = run_cli("set", ada, write(tmp_path, "photo.jpg", data), check=False)
    assert proc.returncode == 1
    assert message.lower() in proc.stderr.lower()
    assert b"Traceback" not in proc.stderr and proc.stderr.count(b"\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "ghost@contoso.example", "--save"), b"No user"),
        (("get", "ada@contoso.example", "-o", "x.jpg"), b"no photo"),
        (("get", "ada@contoso.example", "--size", "100", "-o", "x.jpg"), b"valid: 48"),
        (("set", "ada@contoso.example"), b"exactly one"),
        (("set", "ada@contoso.example", "/nonexistent/file.jpg"), b"Cannot read"),
        (("user", "add", "not-an-address", "--name", "X"), b"not a mail address"),
        (("user", "add", "al@contoso.example", "--name", "X"), b"already"),
        (("user", "set", "ada@contoso.example", "--picture", "url"), b"--url"),
    ],
)
def test_errors_are_one_line_with_non_zero_exit(run_cli: RunCli, ada: str, args, message) -> None:
    proc = run_cli(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr and b"Traceback" not in proc.stderr


def test_account_states_through_the_cli(run_cli: RunCli, ada: str, tmp_path: Path) -> None:
    src = write(tmp_path, "a.png", encode(Image.new("RGB", (300, 300), (5, 5, 5)), "PNG"))
    run_cli("user", "set", ada, "--account", "disabled")
    proc = run_cli("set", ada, src, check=False)
    assert proc.returncode == 1 and b"account is disabled" in proc.stderr
    run_cli("user", "set", ada, "--account", "sd_only")
    proc = run_cli("set", ada, src)
    assert b"sd_only" in proc.stderr and b"sizes 48,64,96" in proc.stdout
    run_cli(
        "user",
        "set",
        ada,
        "--picture",
        "url",
        "--url",
        "https://img.example/ada.jpg",
        "--visibility",
        "everyone",
    )
    shown = run_cli("user", "show", ada).stdout.decode()
    assert "url (https://img.example/ada.jpg)" in shown and "everyone" in shown


def test_demo_then_get_returns_a_photo(run_cli: RunCli, tmp_path: Path) -> None:
    out = run_cli("demo").stdout.decode()
    assert "50 users added" in out
    header, *listing = run_cli("user", "list").stdout.decode().splitlines()
    assert header.split() == ["ADDRESS", "ACCOUNT", "PICTURE", "VISIBILITY", "PHOTO", "NAME"]
    assert len(listing) == 50
    rows = {line.split()[0]: line for line in listing}
    assert "sd_only" in rows["debra.berger@contoso.example"]
    assert "disabled" in rows["henrietta.mueller@contoso.example"]
    assert "hidden" in rows["lidia.holloway@contoso.example"]
    assert " url " in rows["pradeep.gupta@contoso.example"]
    assert sum(" photo " in line and line.split()[4] == "-" for line in listing) >= 5
    target = tmp_path / "adele.jpg"
    run_cli("get", "adele.vance@contoso.example", "--size", "240", "-o", str(target))
    image = Image.open(io.BytesIO(target.read_bytes()))
    assert image.format == "JPEG" and image.size == (240, 240)
    assert "0 users added" in run_cli("demo").stdout.decode()
    help_text = run_cli("user", "list", "--help").stdout.decode()
    assert "VISIBILITY  who may see it" in help_text and "PHOTO " in help_text


def test_every_command_has_teaching_help(run_cli: RunCli) -> None:
    commands = [
        (),
        ("init",),
        ("user",),
        ("user", "add"),
        ("user", "list"),
        ("user", "show"),
        ("user", "set"),
        ("set",),
        ("get",),
        ("remove",),
        ("demo",),
    ]
    for command in commands:
        out = run_cli(*command, "--help").stdout.decode()
        assert "Usage:" in out and len(out.splitlines()) >= 5, command
    assert "Examples:" in run_cli("set", "--help").stdout.decode()


def test_home_option_overrides_environment(run_cli: RunCli, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    run_cli("--home", str(other), "init")
    assert (other / "userphoto.toml").exists()


def test_tokens_expire_and_list_expiry_and_last_use(run_cli: RunCli, ada: str) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    default = run_cli("token", "create", ada)
    assert default.stdout.decode().startswith("upt_")
    assert "expires" in default.stderr.decode()
    run_cli("token", "create", "it@contoso.example", "--admin", "--expires", "12h")
    run_cli("token", "create", "ops@contoso.example", "--admin", "--expires", "never")
    bad = run_cli("token", "create", ada, "--expires", "soon", check=False)
    assert bad.returncode != 0 and "--expires 'soon'" in bad.stderr.decode()
    listed = {t["address"]: t for t in json.loads(run_cli("token", "list", "--json").stdout)}
    now = datetime.now(UTC)
    days90 = datetime.fromisoformat(listed[ada]["expires"]) - now
    assert timedelta(days=89, hours=23) < days90 <= timedelta(days=90)  # [server] token_days
    hours12 = datetime.fromisoformat(listed["it@contoso.example"]["expires"]) - now
    assert timedelta(hours=11, minutes=59) < hours12 <= timedelta(hours=12)
    assert listed["ops@contoso.example"]["expires"] is None
    assert all(t["last_used"] is None and not t["expired"] for t in listed.values())
    text = run_cli("token", "list").stdout.decode()
    assert "expires never" in text and "last used never" in text


def test_serve_refuses_a_bad_public_url_in_one_line(run_cli: RunCli) -> None:
    run_cli("init")
    for bad in ("photos.contoso.example", "https://photos.contoso.example/#top"):
        r = run_cli("serve", check=False, env={"USERPHOTO_SERVER_PUBLIC_URL": bad})
        err = r.stderr.decode()
        assert r.returncode == 1 and "public_url" in err and "USERPHOTO_SERVER_PUBLIC_URL" in err, (
            err
        )
        assert "Traceback" not in err
