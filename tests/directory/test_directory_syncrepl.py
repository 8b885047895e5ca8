"""`sync --watch` with RFC 4533 syncrepl against a real slapd that loads the syncprov overlay:
changes, adds and deletes pushed as they commit, the cookie resuming a restarted watch without a
full read, a slapd restart, the deletion guard on a burst of deletes, and the polling fallback
on a server without syncprov."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ldap3
import pytest

from tests.conftest import BIN, RunCli
from tests.support.directory import (
    address,
    engine_for,
    make_app,
    set_photo_in_ldap,
    wait_for_watch,
    write_config,
)
from tests.support.slapd import HAVE_SLAPD, Slapd, ldif, photo, user_dn, user_entry
from userphoto.app import App
from userphoto.config import Settings
from userphoto.directory import status
from userphoto.directory.status import SyncReport
from userphoto.directory.sync.watch import watch as follow
from userphoto.directory.syncrepl import COOKIE_KEY

# Under CI a missing slapd fails these tests (the setup script installs it); elsewhere, skip.
pytestmark = pytest.mark.skipif(
    not HAVE_SLAPD and os.environ.get("CI") != "true",
    reason="slapd is not installed (Debian packages slapd, ldap-utils)",
)
USERS = 200


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Slapd]:
    """A running slapd with syncprov and 200 users with photos (seeded offline)."""
    server = Slapd(tmp_path / "slapd")
    server.seed(ldif(range(USERS)))
    server.start()
    yield server
    server.stop()


class Watch:
    """`sync.watch` (what `sync --watch` runs) in a thread of this process (the test sees
    its reports)."""

    def __init__(self, app: App):
        self.app = app
        self.stop = threading.Event()
        self.reports: list[SyncReport] = []
        self.announced: list[str] = []
        self.thread = threading.Thread(
            target=follow,
            args=(engine_for(app), self.stop),
            kwargs={"after_cycle": self.reports.append, "announce": self.announced.append},
        )

    def __enter__(self) -> Watch:
        self.thread.start()
        wait_for_watch(self.app)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError("the change did not arrive within 10 s")


def photo_hash(app: App, i: int) -> str | None:
    user = app.store.find_user(address(i))
    thumb = app.store.get_directory_thumbnail(user.id) if user else None
    return thumb.raw_hash if thumb else None


def is_gone(app: App, i: int) -> bool:
    user = app.store.find_user(address(i))
    return user is not None and user.directory_gone


def test_change_add_and_delete_are_pushed(home: Path, directory: Slapd) -> None:
    app = make_app(home, directory)
    assert engine_for(app).full().ok
    with Watch(app) as watch:
        assert "RFC 4533" in watch.announced[0]
        shown = status.format_status(status.load(app.store))
        assert "pushed by the server (RFC 4533 syncrepl" in shown
        # No cookie yet: the first refresh read every entry (and changed nothing).
        assert "read every entry (no stored cookie), 200 entries read" in shown

        old = photo_hash(app, 5)
        set_photo_in_ldap(directory, 5, photo(5, 1))
        eventually(lambda: photo_hash(app, 5) not in (old, None))

        conn = directory.connection()
        conn.add(user_dn(500), attributes=user_entry(500, photo(500)))
        eventually(lambda: app.store.find_user(address(500)) is not None)
        assert photo_hash(app, 500) is not None

        conn.modify(user_dn(6), {"displayName": [(ldap3.MODIFY_REPLACE, ["Renamed Six"])]})
        eventually(lambda: app.store.find_user(address(6)).display_name == "Renamed Six")  # type: ignore[union-attr]

        conn.delete(user_dn(7))
        eventually(lambda: is_gone(app, 7))
        assert app.store.get_directory_thumbnail(app.store.find_user(address(7)).id)  # type: ignore[union-attr]
    # Each pushed change was one small delta: nothing re-read the directory.
    deltas = [r for r in watch.reports if r.mode == "delta"]
    assert sum(r.seen for r in deltas) == 3 and sum(r.gone for r in deltas) == 1
    assert all(r.ok for r in watch.reports)
    assert app.store.count_users() == USERS + 1
    app.close()


def test_a_burst_of_deletes_meets_the_deletion_guard(home: Path, directory: Slapd) -> None:
    app = make_app(home, directory)
    assert engine_for(app).full().ok
    with Watch(app) as watch:
        conn = directory.connection()
        for i in range(40):  # 20% in one burst: over the 10% guard
            conn.delete(user_dn(i))
        eventually(lambda: any(r.error for r in watch.reports))
        refused = next(r for r in watch.reports if r.error)
        assert "refused to mark 40 of 200" in (refused.error or "")
        assert refused.gone == 0 and not is_gone(app, 3)
        assert "refused to mark" in status.format_status(status.load(app.store))

        conn.delete(user_dn(100))  # one more, on its own: under the guard
        eventually(lambda: is_gone(app, 100))
    assert not is_gone(app, 3)
    # As after a refused full sync, `--full --force` applies it.
    forced = engine_for(app).full(force=True)
    assert forced.ok and forced.gone == 40
    app.close()


def test_restarted_watch_resumes_from_the_cookie(
    home: Path, directory: Slapd, run_cli: RunCli
) -> None:
    write_config(home, directory.directory_settings())
    run_cli("sync", "--full")
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    app = App(Settings.load(home))

    def watch_process() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(BIN / "userphoto"), "sync", "--watch"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for_watch(app)
        return proc

    def stop(proc: subprocess.Popen[bytes]) -> str:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    first = watch_process()
    assert status.load(app.store)["watch"]["refresh"]["full"] is True
    out = stop(first)
    assert "RFC 4533" in out and "stopped" in out
    cookie = app.store.get_state(COOKIE_KEY)
    assert cookie is not None and "csn=" in cookie

    # While no watch runs: a change, an add and a delete.
    old = photo_hash(app, 9)
    set_photo_in_ldap(directory, 9, photo(9, 3))
    conn = directory.connection()
    conn.add(user_dn(600), attributes=user_entry(600, photo(600)))
    conn.delete(user_dn(10))
    full_before = status.load(app.store)["full"]

    second = watch_process()
    try:
        watch = status.load(app.store)["watch"]
        # Resumed from the cookie: only the two changed entries were read, not 200.
        assert watch["refresh"]["full"] is False
        assert watch["refresh"]["entries"] == 2 and watch["refresh"]["deleted"] == 1
        assert status.load(app.store)["full"] == full_before  # no full read was recorded
        assert photo_hash(app, 9) not in (old, None)
        assert app.store.find_user(address(600)) is not None
        assert is_gone(app, 10)
        shown = run_cli("sync", "--status").stdout.decode()
        assert "last refresh: resumed from the stored cookie, 2 entries read" in shown
    finally:
        stop(second)
    app.close()


def test_slapd_restart_reconnects_without_losing_a_change(home: Path, directory: Slapd) -> None:
    # The first reconnect attempt comes after 1 s: the changes below land while it waits.
    app = make_app(home, directory, backoff=1.0)
    assert engine_for(app).full().ok
    with Watch(app):
        directory.stop()
        eventually(lambda: status.load(app.store)["watch"]["state"] == "degraded")
        assert "connection was lost" in status.load(app.store)["watch"]["error"]
        directory.start()  # same port, same data
        old = photo_hash(app, 20)
        set_photo_in_ldap(directory, 20, photo(20, 4))
        conn = directory.connection()
        conn.add(user_dn(700), attributes=user_entry(700, photo(700)))
        conn.delete(user_dn(21))
        eventually(lambda: photo_hash(app, 20) not in (old, None), timeout=30)
        eventually(lambda: app.store.find_user(address(700)) is not None)
        eventually(lambda: is_gone(app, 21))
        watch = status.load(app.store)["watch"]
        assert watch["state"] == "running" and watch["sessions"] == 2
        assert watch["refresh"]["full"] is False  # resumed from the cookie
        # And the persist phase carries on after the reconnect.
        set_photo_in_ldap(directory, 22, photo(22, 4))
        eventually(lambda: photo_hash(app, 22) == hashlib.sha256(photo(22, 4)).hexdigest())
    app.close()


def test_server_without_syncprov_falls_back_to_polling(
    home: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    server = Slapd(tmp_path / "plain", syncprov=False)
    server.seed(ldif(range(50)))
    server.start()
    try:
        app = make_app(home, server, watch_interval=0.2)
        assert engine_for(app).full().ok
        with Watch(app) as watch:
            assert "every 0.2s" in watch.announced[0]
            assert "syncprov" in watch.announced[0]
            old = photo_hash(app, 3)
            set_photo_in_ldap(server, 3, photo(3, 2))
            eventually(lambda: photo_hash(app, 3) not in (old, None))
            shown = run_cli("sync", "--status").stdout.decode()
        assert "changes: polling every 0.2s" in shown
        assert "does not offer RFC 4533 content sync" in shown and "syncprov" in shown
        assert app.store.get_state(COOKIE_KEY) is None
        app.close()
    finally:
        server.stop()


def test_control_offered_but_refused_falls_back_to_polling(home: Path, tmp_path: Path) -> None:
    """syncprov loaded as a module but not on this database: the root DSE lists the control,
    the search is refused, and the watch polls instead (and says why)."""
    server = Slapd(tmp_path / "half", syncprov=False)
    server.conf.write_text(
        server.conf.read_text().replace(
            "moduleload back_mdb\n", "moduleload back_mdb\nmoduleload syncprov\n"
        )
    )
    server.seed(ldif(range(20)))
    server.start()
    try:
        app = make_app(home, server, watch_interval=0.2)
        assert engine_for(app).full().ok
        with Watch(app) as watch:
            assert "RFC 4533" in watch.announced[0]  # offered: tried first
            old = photo_hash(app, 4)
            set_photo_in_ldap(server, 4, photo(4, 2))
            eventually(lambda: photo_hash(app, 4) not in (old, None))
        assert "refused the content-sync search" in watch.announced[1]
        why = status.load(app.store)["watch"]["why"]
        assert "critical" in why.lower() and "syncprov" in why
        app.close()
    finally:
        server.stop()
