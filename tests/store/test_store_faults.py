"""Store faults get an answer that says what happened: a full disk, a held lock, a read-only folder.

The full disk and the read-only folder are real: a small tmpfs mounted for the test (and
remounted read-only), so SQLite meets the kernel's own ENOSPC and EROFS. This needs root (or
CAP_SYS_ADMIN); elsewhere the tests skip, and under CI they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN
from tests.support.server import addr, seed, start_server, stop_server
from userphoto.demo import portrait

JPEG = {"Content-Type": "image/jpeg"}


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        why = mounted.stderr.decode().strip()
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the test: {why}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    env.pop("USERPHOTO_DEBUG", None)
    return subprocess.run(
        [str(BIN / "userphoto"), *args], capture_output=True, env=env, timeout=120
    )


def fill(folder: Path) -> None:
    """Write until the disk holding `folder` is full."""
    chunk = b"\0" * 65536
    with open(folder / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(chunk)
            f.flush()


@contextlib.contextmanager
def serving(home: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    proc, base = start_server(home)
    client = httpx.Client(base_url=base, timeout=60)
    try:
        yield client, {}
    finally:
        client.close()
        stop_server(proc)


def put(client: httpx.Client, token: str, who: str, body: bytes) -> httpx.Response:
    headers = {**JPEG, "Authorization": f"Bearer {token}"}
    return client.put(f"/v1/users/{addr(who)}/photo", content=body, headers=headers)


def get(client: httpx.Client, token: str, who: str) -> httpx.Response:
    return client.get(f"/v1/users/{addr(who)}/photo", headers={"Authorization": f"Bearer {token}"})


def test_a_full_disk_gets_507_and_says_so(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "16m") as home:
        tokens = seed(home)[0]
        photo = tmp_path / "new.jpg"
        photo.write_bytes(portrait(7, 900, 900))
        with serving(home) as (client, _):
            assert put(client, tokens["admin"], "ada", portrait(6, 700, 700)).status_code == 200
            before = get(client, tokens["bob"], "ada").content
            fill(home)

            r = put(client, tokens["admin"], "ada", photo.read_bytes())
            assert r.status_code == 507, r.text
            error = r.json()["error"]
            assert error["code"] == "store_full"
            assert f"The disk holding {home} is full" in error["message"]
            # Nothing was lost and reading goes on.
            got = get(client, tokens["bob"], "ada")
            assert got.status_code == 200 and got.content == before

            done = cli(home, "set", addr("ada"), str(photo))
            assert done.returncode == 1
            err = done.stderr.decode()
            assert f"the disk holding {home} is full" in err.lower(), err
            assert "rollback" not in err and "Traceback" not in err
            listed = cli(home, "user", "list")
            assert listed.returncode == 0 and addr("ada") in listed.stdout.decode()


def test_a_held_write_lock_gets_503_with_retry_after(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    tokens = seed(home)[0]
    photo = tmp_path / "new.jpg"
    photo.write_bytes(portrait(8, 700, 700))
    with serving(home) as (client, _):
        holder = sqlite3.connect(home / "userphoto.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        try:
            started = time.monotonic()
            r = put(client, tokens["admin"], "ada", photo.read_bytes())
            waited = time.monotonic() - started
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "store_locked"
            assert int(r.headers["retry-after"]) > 0
            assert waited < 20  # a short bounded wait, not the old 30 s
            assert get(client, tokens["bob"], "ada").status_code in (200, 404)  # reads go on

            done = cli(home, "set", addr("ada"), str(photo))
            assert done.returncode == 1
            err = done.stderr.decode()
            assert "is locked by another process's write" in err, err
            assert "userphoto.db" in err
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert put(client, tokens["admin"], "ada", photo.read_bytes()).status_code == 200


def test_a_read_only_folder_reads_and_serves_but_refuses_writes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "32m") as home:
        tokens = seed(home)[0]
        photo = tmp_path / "new.jpg"
        photo.write_bytes(portrait(9, 700, 700))
        assert cli(home, "set", addr("ada"), str(photo)).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)

        listed = cli(home, "user", "list")
        assert listed.returncode == 0, listed.stderr.decode()
        assert addr("ada") in listed.stdout.decode()
        out = tmp_path / "out.jpg"
        fetched = cli(home, "get", addr("ada"), "-o", str(out))
        assert fetched.returncode == 0, fetched.stderr.decode()
        assert out.read_bytes()[:3] == b"\xff\xd8\xff"

        refused = cli(home, "set", addr("bob"), str(photo))
        assert refused.returncode == 1
        assert f"The data folder {home} is read-only" in refused.stderr.decode()

        with serving(home) as (client, _):
            got = get(client, tokens["bob"], "ada")
            assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff"
            r = put(client, tokens["admin"], "bob", photo.read_bytes())
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "store_read_only"
