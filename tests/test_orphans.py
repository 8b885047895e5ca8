"""No orphans, no hangs: helper processes die with their parent; odd files cannot stall import.

`sync --watch` runs against a real slapd; `import` reads a real folder holding a FIFO and a real
zip whose member names carry terminal escapes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import BIN, RunCli
from tests.support.directory import write_config
from tests.support.slapd import HAVE_SLAPD, Slapd, ldif
from userphoto.demo import portrait
from userphoto.model import User


def descendants(root: int) -> set[int]:
    """Every live process below `root` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not HAVE_SLAPD and os.environ.get("CI") != "true", reason="slapd missing")
def test_a_killed_sync_watch_leaves_no_process_behind(home: Path, tmp_path: Path) -> None:
    server = Slapd(tmp_path / "slapd")
    server.seed(ldif(range(300)))  # enough photos that the full sync starts its workers
    server.start()
    try:
        write_config(home, server.directory_settings(watch_interval=0.2))
        env = {**os.environ, "USERPHOTO_HOME": str(home)}
        proc = subprocess.Popen(
            [str(BIN / "userphoto"), "sync", "--watch"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        helpers: set[int] = set()
        deadline = time.monotonic() + 60
        # The forkserver, two photo workers and the resource tracker.
        while time.monotonic() < deadline and len(helpers) < 4 and proc.poll() is None:
            helpers = descendants(proc.pid)
            time.sleep(0.1)
        assert len(helpers) >= 3, f"sync --watch started only {helpers}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        helpers |= descendants(proc.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in helpers):
            time.sleep(0.1)
        lingering = [p for p in helpers if alive(p)]
        for p in lingering:  # never leave them behind, even when failing
            os.kill(p, signal.SIGKILL)
        assert not lingering, "sync's helper processes outlived the killed parent"
    finally:
        server.stop()


def test_import_skips_a_fifo_and_escapes_control_characters(
    home: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    run_cli("init")
    from userphoto.app import App
    from userphoto.config import Settings

    app = App(Settings.load(home))
    for name in ("ada", "bob", "cy"):
        app.store.add_user(
            User(id=name, address=f"{name}@contoso.example", display_name=name.title())
        )
    app.close()
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "ada@contoso.example.jpg").write_bytes(portrait(1, 400, 400))
    os.mkfifo(folder / "bob@contoso.example.jpg")  # nobody will ever write to it
    (folder / "odd\x1b[31mname.jpg").write_bytes(portrait(2, 400, 400))
    done = run_cli("import", str(folder), check=False)  # would hang forever on the FIFO
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode in (0, 1), out
    assert "1 imported" in out
    # The FIFO is never opened: it is listed as skipped, with the reason (issue #24).
    assert "skipped       bob@contoso.example.jpg  (a FIFO (named pipe)" in out, out
    assert "\x1b" not in out and "odd\\x1b[31mname.jpg" in out

    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cy@contoso.example.jpg", portrait(3, 400, 400))
        z.writestr("\x1b]0;pwned\x07cy@contoso.example.jpg", portrait(4, 400, 400))
        z.writestr("../bob@contoso.example.jpg", portrait(5, 400, 400))
        link = zipfile.ZipInfo("bob@contoso.example.jpg")
        link.external_attr = (0o120777 << 16) | 0  # a symlink, as `zip -y` stores one
        z.writestr(link, "/etc/passwd")
    done = run_cli("import", str(archive), check=False)
    out = done.stdout.decode() + done.stderr.decode()
    assert "\x1b" not in out and "\x07" not in out
    assert "1 imported" in out, out
    assert "duplicate" not in out  # the odd names were never candidates
    assert "../bob@contoso.example.jpg  (a name that leads outside" in out, out
    assert "skipped       bob@contoso.example.jpg  (a symbolic link" in out, out
    assert "a name with control characters" in out, out


def test_set_from_an_endless_device_is_refused_at_the_limit(home: Path, run_cli: RunCli) -> None:
    run_cli("init")
    run_cli("user", "add", "ada@contoso.example", "--name", "Ada")
    started = time.monotonic()
    done = run_cli("set", "ada@contoso.example", "/dev/zero", check=False)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "The file is larger than the 4.0 MB limit" in err, err
    assert "MemoryError" not in err
    assert time.monotonic() - started < 60
