"""The first run, as a new user meets it: `make run`, a missing data folder, mistyped
addresses, unwritable paths, a taken port and a dry run that tells the truth. All through the
real `userphoto` entry point (a subprocess) and, for `make run`, the real Makefile and server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import click
import httpx
import pytest
from PIL import Image

from tests.conftest import BIN, RunCli
from tests.support.images import encode
from tests.support.net import free_port
from userphoto.cli import cli

REPO = Path(__file__).resolve().parents[2]


def leaf_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += leaf_commands(command, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.fixture
def demo_home(run_cli: RunCli) -> RunCli:
    run_cli("init")
    run_cli("demo")
    return run_cli


def test_missing_data_folder_is_an_error_except_for_init_serve_demo(
    run_cli: RunCli, tmp_path: Path
) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(encode(Image.new("RGB", (300, 300), (9, 90, 200)), "JPEG"))
    args = {
        ("set",): ("a@contoso.example", str(photo)),
        ("get",): ("a@contoso.example", "-o", str(tmp_path / "out.jpg")),
        ("remove",): ("a@contoso.example",),
        ("import",): (str(tmp_path), "--dry-run"),
        ("export",): (str(tmp_path / "backup"),),
        ("config", "check"): (),
        ("diagnose",): ("a@contoso.example",),
        ("doctor",): (),
        ("sync",): ("--status",),
        ("directory", "upload"): ("a@contoso.example", str(photo)),
        ("directory", "check"): (),
        ("directory", "push"): ("a@contoso.example",),
        ("token", "create"): ("a@contoso.example",),
        ("token", "list"): (),
        ("token", "revoke"): ("abcd",),
        ("partner", "add"): ("fabrikam.example",),
        ("partner", "list"): (),
        ("partner", "remove"): ("fabrikam.example",),
        ("user", "add"): ("a@contoso.example", "--name", "A"),
        ("user", "list"): (),
        ("user", "show"): ("a@contoso.example",),
        ("user", "set"): ("a@contoso.example", "--visibility", "everyone"),
        ("store", "copy"): ("--to", "postgresql://postgres@127.0.0.1/none"),
    }
    creating = {("init",), ("serve",), ("demo",), ("config", "docs")}  # docs reads no folder
    assert set(leaf_commands()) == set(args) | creating, "a new command: add it here"
    missing = str(tmp_path / "nonexistent" / "x")  # per test: never a folder another run left
    for command, rest in args.items():
        proc = run_cli("--home", missing, *command, *rest, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1, (command, err)
        assert err == (
            f"error: no userphoto data folder at {missing}; run `userphoto init` "
            "(or give the right one with --home DIR or USERPHOTO_HOME)\n"
        ), command
    assert not Path(missing).exists()

    # init creates it; serve and demo may too, and say so.
    fresh = tmp_path / "fresh"
    out = run_cli("--home", str(fresh), "demo").stdout.decode()
    assert f"created the data folder {fresh}" in out and (fresh / "userphoto.toml").exists()


def test_mistyped_addresses_get_the_near_misses_diagnose_gives(
    demo_home: RunCli, tmp_path: Path
) -> None:
    typo = "adele.vanse@contoso.example"
    found = demo_home("diagnose", typo, check=False)
    assert found.returncode == 1  # an unknown user is an error-level cause
    diagnosed = found.stdout.decode()
    hint = re.search(r"Did you mean ([^?]+)\?", diagnosed)
    assert hint and "adele.vance@contoso.example" in hint.group(1)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(encode(Image.new("RGB", (300, 300), (9, 90, 200)), "JPEG"))
    for args in (
        ("set", typo, str(photo)),
        ("get", typo, "-o", str(tmp_path / "x.jpg")),
        ("remove", typo),
        ("user", "show", typo),
    ):
        proc = demo_home(*args, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.count("\n") == 1, (args, err)
        assert f"Did you mean {hint.group(1)}?" in err, (args, err)
    assert not (tmp_path / "x.jpg").exists()


def test_file_system_errors_are_one_plain_line(demo_home: RunCli) -> None:
    for args, path, reason in (
        (
            ("get", "adele.vance@contoso.example", "-o", "/nonexistent/dir/x.jpg"),
            "/nonexistent/dir/x.jpg",
            "No such file or directory",
        ),
        (("export", "/proc/x"), "/proc/x", "No such file or directory"),
    ):
        proc = demo_home(*args, check=False)
        assert proc.returncode == 1
        assert proc.stderr.decode() == f"error: {path}: {reason}\n"


def test_user_list_has_a_header_and_explains_its_columns(demo_home: RunCli) -> None:
    header, first, *_ = demo_home("user", "list").stdout.decode().splitlines()
    assert header.split() == ["ADDRESS", "ACCOUNT", "PICTURE", "VISIBILITY", "PHOTO", "NAME"]
    assert first.split()[:5] == ["adele.vance@contoso.example", "hd", "photo", "everyone", "photo"]
    help_text = demo_home("user", "list", "--help").stdout.decode()
    for column in ("ADDRESS", "ACCOUNT", "PICTURE", "VISIBILITY", "PHOTO", "NAME"):
        assert re.search(rf"^\s+{column}\s+\S", help_text, re.M), column


def test_import_dry_run_validates_as_the_import_does(demo_home: RunCli, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    whole = encode(Image.effect_noise((800, 800), 60).convert("RGB"), "JPEG")
    (folder / "adele.vance@contoso.example.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "alex.wilber@contoso.example.jpg").write_bytes(whole)
    dry = demo_home("import", str(folder), "--dry-run", "--on-conflict", "replace", check=False)
    real = demo_home("import", str(folder), "--on-conflict", "replace", check=False)
    dry_out, real_out = dry.stdout.decode(), real.stdout.decode()
    assert "damaged or truncated" in dry_out, dry_out
    assert "damaged or truncated" in real_out, real_out
    assert dry.returncode == real.returncode == 1
    assert re.search(r"1 invalid", dry_out) and re.search(r"1 invalid", real_out)


def test_serve_with_its_port_taken_says_so_before_claiming_to_serve(
    demo_home: RunCli,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        proc = demo_home("serve", "--port", str(port), check=False)
    finally:
        taken.close()
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "serving on" not in err
    assert err == (
        f"error: port {port} on 127.0.0.1 is in use (another `userphoto serve`?); pick another "
        "with `userphoto serve --port N` or [server] port in userphoto.toml\n"
    )


def test_make_run_prints_url_and_working_tokens_before_serving(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "demo"
    env = {
        **os.environ,
        "USERPHOTO_HOME": str(home),
        "USERPHOTO_SERVER_PORT": str(port),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    proc = subprocess.Popen(
        ["make", "-s", "-C", str(REPO), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 240
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving on" in line:
                break
        text = "".join(lines)
        assert f"serving on http://127.0.0.1:{port}/" in text, text
        assert f"http://127.0.0.1:{port}/" in text.split("serving on")[0]
        admin = re.search(r"admin token\s+\(it@contoso\.example\): (\S+)", text)
        member = re.search(r"member token \(adele\.vance@contoso\.example\): (\S+)", text)
        assert admin and member, text
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(100):  # the socket is bound; the first answer may take a moment
                try:
                    client.get("/")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            me = client.get(
                "/v1/users/adele.vance@contoso.example/photo/meta",
                headers={"Authorization": f"Bearer {member.group(1)}"},
            )
            assert me.status_code == 200, me.text
            doctor = client.get(
                "/v1/admin/doctor", headers={"Authorization": f"Bearer {admin.group(1)}"}
            )
            assert doctor.status_code == 200, doctor.text
            refused = client.get(
                "/v1/admin/doctor", headers={"Authorization": f"Bearer {member.group(1)}"}
            )
            assert refused.status_code in (401, 403)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
