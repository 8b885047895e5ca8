"""Directory sync against a real OpenLDAP slapd: load, delta, guard, outage, write-back, garbage."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
from PIL import Image

from tests.conftest import BIN, RunCli
from tests.support.directory import (
    address,
    engine_for,
    make_app,
    set_photo_in_ldap,
    wait_for_watch,
    write_config,
)
from tests.support.slapd import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    Slapd,
    SlowProxy,
    ldif,
    photo,
    uid,
    user_dn,
)
from userphoto import imaging
from userphoto.app import App
from userphoto.config import ConfigError, Settings
from userphoto.directory import status
from userphoto.directory.sync import pages as sync_pages
from userphoto.directory.writeback import WriteBack
from userphoto.model import Account, DirectoryThumbnail, PhotoState

# A missing slapd skips these on a developer machine and fails them under CI=true.
pytestmark = pytest.mark.usefixtures("slapd_installed")


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Slapd]:
    """A running slapd with 1,000 users, each with a thumbnailPhoto (seeded offline)."""
    server = Slapd(tmp_path / "slapd")
    server.seed(ldif(range(1000)))
    server.start()
    yield server
    server.stop()


def ldapsearch_photo(server: Slapd, dn: str) -> bytes | None:
    out = subprocess.run(
        [
            "ldapsearch",
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            server.uri,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            "-b",
            dn,
            "-s",
            "base",
            "thumbnailPhoto",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("thumbnailPhoto:: "):
            return base64.b64decode(line.split(":: ", 1)[1])
    return None


# --- initial load, delta, change detection ---------------------------------------------------
def test_initial_full_sync_of_1000_users(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded)
    report = engine_for(app).full()
    assert report.ok, report.error
    assert (report.seen, report.added, report.photos_new) == (1000, 1000, 1000)
    assert app.store.count_users() == 1000

    user = app.store.find_user(address(7))
    assert user is not None and user.source == "directory"
    assert user.attributes["givenName"] == "Test"
    assert user.attributes["sn"] == "User7"
    assert user.attributes["employeeID"] == "E00007"
    assert user.attributes["sAMAccountName"] == uid(7)
    assert user.attributes["dn"] == user_dn(7)
    assert user.aliases == ["u7@alias.example.org"]  # from proxyAddresses smtp:
    assert user.display_name == "Test User 7"
    assert app.store.find_user("u7@alias.example.org").id == user.id  # type: ignore[union-attr]
    # entryUUID is the stable id.
    conn = seeded.connection()
    conn.search(user_dn(7), "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
    assert user.id == conn.response[0]["raw_attributes"]["entryUUID"][0].decode().lower()

    thumb = app.store.get_directory_thumbnail(user.id)
    assert thumb is not None and thumb.jpeg is not None and thumb.problem is None
    assert not thumb.written_by_us
    assert Image.open(io.BytesIO(thumb.jpeg)).size == (96, 96)
    assert app.store.get_photo(user.id) is None  # the directory photo never becomes the HD one

    # A second full sync rewrites nothing and leaves serving caches alone (status is not an answer).
    generation = app.store.latest_seq()
    again = engine_for(app).full()
    assert (again.added, again.updated, again.photos_new, again.unchanged) == (0, 0, 0, 1000)
    assert again.photos_unchanged == 1000
    assert app.store.latest_seq() == generation
    app.close()


def test_delta_after_10_changes(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded)
    engine = engine_for(app)
    assert engine.full().ok
    before = {
        i: app.store.get_directory_thumbnail(app.store.find_user(address(i)).id)  # type: ignore[union-attr]
        for i in range(5)
    }
    conn = seeded.connection()
    for i in range(5):  # 5 new photos
        conn.modify(user_dn(i), {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [photo(i, 1)])]})
    for i in range(5, 8):  # 3 renamed
        conn.modify(user_dn(i), {"displayName": [(ldap3.MODIFY_REPLACE, [f"Renamed {i}"])]})
    for i in (2000, 2001):  # 2 new people
        from tests.support.slapd import user_entry

        conn.add(user_dn(i), attributes=user_entry(i, photo(i)))
    report = engine_for(app).delta()  # a new engine: the cursor comes from the store
    assert report.ok, report.error
    assert report.mode == "delta"
    # Only the changed entries were read (plus the newest old one: the cursor overlaps).
    assert report.seen <= 12
    # 3 renamed + 5 whose entry changed (the per-user "last directory change" moves too).
    assert (report.added, report.updated, report.photos_new) == (2, 8, 7)
    for i in range(5):
        user = app.store.find_user(address(i))
        assert user is not None
        thumb = app.store.get_directory_thumbnail(user.id)
        assert thumb is not None and thumb.raw_hash != before[i].raw_hash  # type: ignore[union-attr]
    assert app.store.find_user(address(6)).display_name == "Renamed 6"  # type: ignore[union-attr]
    # Nothing changed since: an idle delta writes nothing at all.
    generation = app.store.latest_seq()
    idle = engine.delta()
    assert idle.ok and not idle.changed
    assert app.store.latest_seq() == generation
    app.close()


def test_watcher_sees_users_another_sync_process_added(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded)
    watcher = engine_for(app)
    assert watcher.full().ok  # the watcher's index now knows 1,000 users
    conn = seeded.connection()
    from tests.support.slapd import user_entry

    conn.add(user_dn(3000), attributes=user_entry(3000, photo(3000)))
    assert engine_for(app).delta().added == 1  # another process (say, cron) adds it first
    conn.modify(user_dn(3000), {"displayName": [(ldap3.MODIFY_REPLACE, ["Renamed"])]})
    report = watcher.delta()  # unknown to the watcher's index, known to the store
    assert report.ok and report.skipped == 0 and report.added == 0, report.problems
    assert app.store.find_user(address(3000)).display_name == "Renamed"  # type: ignore[union-attr]
    app.close()


def test_deletion_guard(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded)
    assert engine_for(app).full().ok
    conn = seeded.connection()
    for i in range(50):  # 5%: under the 10% guard
        conn.delete(user_dn(i))
    report = engine_for(app).full()
    assert report.ok and report.gone == 50
    gone = app.store.find_user(address(3))
    assert gone is not None and gone.directory_gone  # marked, not deleted
    assert app.store.get_directory_thumbnail(gone.id) is not None
    assert app.store.count_users() == 1000

    for i in range(50, 250):  # 200 of the remaining 950: 21%, over the guard
        conn.delete(user_dn(i))
    refused = engine_for(app).full()
    assert not refused.ok and refused.gone == 0
    assert "delete_guard" in (refused.error or "") and "200 of 950" in (refused.error or "")
    assert not app.store.find_user(address(100)).directory_gone  # type: ignore[union-attr]
    assert "refused to mark" in status.format_status(status.load(app.store))

    forced = engine_for(app).full(force=True)
    assert forced.ok and forced.gone == 200

    # Someone comes back: no longer gone, same user.
    from tests.support.slapd import user_entry

    conn.add(user_dn(3), attributes=user_entry(3, photo(3)))
    back = engine_for(app).delta()
    assert back.returned == 1
    assert not app.store.find_user(address(3)).directory_gone  # type: ignore[union-attr]
    app.close()


def test_outage_mid_sync_fails_cleanly_then_resumes(
    home: Path, seeded: Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full read runs ahead of the writes; keep it close behind them, so the directory
    # is still being read when it goes away after the third page is written.
    monkeypatch.setattr(sync_pages, "READ_AHEAD", 1)
    app = make_app(home, seeded, page_size=100)

    def stop_after_third_page(number: int) -> None:
        if number == 3:
            seeded.stop()

    report = engine_for(app, on_page=stop_after_third_page).full()
    assert not report.ok
    assert "did not answer" in (report.error or "") or "No directory" in (report.error or "")
    loaded = app.store.count_users()
    assert 300 <= loaded < 1000  # what was committed stays
    assert report.gone == 0  # an incomplete read marks nobody gone
    assert app.store.get_state(status.CURSOR_KEY) is None  # the cursor did not move
    recorded = status.load(app.store)["full"]
    assert recorded["ok"] is False and recorded["error"]

    seeded.start()  # same port, same data
    resumed = engine_for(app).full()
    assert resumed.ok, resumed.error
    assert resumed.added == 1000 - loaded
    assert resumed.photos_unchanged == loaded  # the earlier work was not redone
    assert app.store.count_users() == 1000
    app.close()


def test_down_directory_fails_with_one_line_and_failover(
    home: Path, seeded: Slapd, run_cli: RunCli
) -> None:
    dead = "ldap://127.0.0.1:1"
    write_config(home, {**seeded.directory_settings(), "uri": [dead, seeded.uri]})
    ok = run_cli("sync", "--full")
    assert b"full sync ok" in ok.stdout
    assert status.load(App(Settings.load(home)).store)["full"]["server"] == seeded.uri

    seeded.stop()
    t0 = time.monotonic()
    failed = run_cli("sync", check=False)
    assert failed.returncode == 1
    assert b"FAILED" in failed.stdout and b"did not answer" in failed.stdout, failed.stdout
    assert b"Traceback" not in failed.stderr
    assert time.monotonic() - t0 < 20
    shown = run_cli("sync", "--status").stdout.decode()
    assert "delta: FAILED" in shown and "last good" not in shown.split("delta:")[0]
    assert ADMIN_PASSWORD not in shown


def test_slow_directory_times_out_then_recovers(home: Path, seeded: Slapd) -> None:
    proxy = SlowProxy(seeded.port)
    try:
        app = make_app(home, seeded, uri=proxy.uri, timeout=1, retries=2, backoff=0.1)
        proxy.delay = 1.5  # every answer arrives after the 1 s timeout
        t0 = time.monotonic()
        report = engine_for(app).full()
        assert not report.ok and "did not answer" in (report.error or "")
        assert time.monotonic() - t0 < 15  # bounded: 2 attempts of 1 s plus backoff
        assert app.store.count_users() == 0
        proxy.delay = 0
        assert engine_for(app).full().ok
        assert app.store.count_users() == 1000
        app.close()
    finally:
        proxy.close()


# --- write-back ------------------------------------------------------------------------------
def test_writeback_visible_through_ldapsearch_and_no_loop(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded, writeback=True)
    assert engine_for(app).full().ok
    upload = Image.new("RGB", (800, 600), (200, 40, 40))
    buf = io.BytesIO()
    upload.save(buf, "JPEG")

    app.photos.set(address(9), buf.getvalue())
    seen = ldapsearch_photo(seeded, user_dn(9))
    assert seen is not None and len(seen) <= imaging.DIRECTORY_LIMIT
    assert Image.open(io.BytesIO(seen)).size == (96, 96)
    user = app.store.find_user(address(9))
    assert user is not None
    saved = app.store.get_photo(user.id)
    assert saved is not None and seen == app.store.get_thumbnail(saved.id)
    slot = app.store.get_directory_thumbnail(user.id)
    assert slot is not None and slot.written_by_us and slot.jpeg == seen

    # Sync reads our own write back: not a "new" directory photo, nothing rewritten.
    report = engine_for(app).delta()
    assert report.ok and report.photos_new == 0 and report.photo_problems == 0
    assert app.store.get_directory_thumbnail(user.id).written_by_us  # type: ignore[union-attr]
    versions = len(app.store.photo_history(user.id))
    generation = app.store.latest_seq()
    assert not engine_for(app).delta().changed
    assert app.store.latest_seq() == generation
    assert len(app.store.photo_history(user.id)) == versions  # no photo loop either

    # An admin changes the directory photo: a real directory change, HD photo untouched.
    set_photo_in_ldap(seeded, 9, photo(9, 5))
    changed = engine_for(app).delta()
    assert changed.photos_new == 1
    slot = app.store.get_directory_thumbnail(user.id)
    assert slot is not None and not slot.written_by_us
    assert app.store.get_photo(user.id).id == saved.id  # type: ignore[union-attr]

    # Removing the HD photo clears thumbnailPhoto.
    app.photos.remove(address(9))
    assert ldapsearch_photo(seeded, user_dn(9)) is None
    assert app.store.get_directory_thumbnail(user.id) is None
    assert engine_for(app).delta().photos_new == 0
    app.close()


def test_writeback_size_64_and_queue_when_directory_down(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded, writeback=True, writeback_size=64)
    assert engine_for(app).full().ok
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 120, 200)).save(buf, "PNG")

    seeded.stop()
    t0 = time.monotonic()
    app.photos.set(address(11), buf.getvalue())  # the upload succeeds with the directory down
    assert time.monotonic() - t0 < 5
    user = app.store.find_user(address(11))
    assert user is not None and app.store.get_photo(user.id) is not None
    assert app.store.pending_writebacks() == [user.id]

    seeded.start()
    assert app.directory is not None
    assert WriteBack(app.store, app.directory).drain() == 1
    seen = ldapsearch_photo(seeded, user_dn(11))
    assert seen is not None and Image.open(io.BytesIO(seen)).size == (64, 64)
    assert app.store.pending_writebacks() == []
    app.close()


def test_refused_writeback_stays_queued_without_blocking_others(home: Path, seeded: Slapd) -> None:
    app = make_app(home, seeded, writeback=True)
    assert engine_for(app).full().ok
    moved = app.store.find_user(address(12))
    assert moved is not None
    moved.attributes["dn"] = f"uid=gone,{user_dn(0).split(',', 1)[1]}"  # entry no longer there
    app.store.update_user(moved)
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (1, 2, 3)).save(buf, "JPEG")
    seeded.stop()
    app.photos.set(address(12), buf.getvalue())
    app.photos.set(address(13), buf.getvalue())
    assert len(app.store.pending_writebacks()) == 2
    seeded.start()
    assert app.directory is not None
    assert WriteBack(app.store, app.directory).drain() == 1  # 13 went through, 12 refused
    assert ldapsearch_photo(seeded, user_dn(13)) is not None
    assert app.store.pending_writebacks() == [moved.id]
    app.close()


def test_a_node_without_the_bind_password_queues_for_the_sync(home: Path, seeded: Slapd) -> None:
    """The guide gives the bind password to `sync` only: a serving node with the same config
    (its `bind_password_file` absent there) still saves photos and queues their write-back,
    never binding; the sync, which has the file, writes them."""
    first = make_app(home, seeded, writeback=True)
    assert engine_for(first).full().ok
    first.close()
    settings = seeded.directory_settings(writeback=True)
    password = settings.pop("bind_password")
    write_config(home, {**settings, "bind_password_file": "bind-password"})
    before = ldapsearch_photo(seeded, user_dn(14))

    node = App(Settings.load(home))
    with pytest.raises(ConfigError, match=r"bind_password_file .* cannot be read"):
        node.directory  # noqa: B018 - what sync and `directory check` load: still an error
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 30, 160)).save(buf, "JPEG")
    node.photos.set(address(14), buf.getvalue())
    user = node.store.find_user(address(14))
    assert user is not None and node.store.get_photo(user.id) is not None
    assert node.store.pending_writebacks() == [user.id]
    assert ldapsearch_photo(seeded, user_dn(14)) == before  # the node did not write
    node.close()

    (home / "bind-password").write_text(password + "\n")
    sync = App(Settings.load(home))
    assert sync.directory is not None and not sync.directory.unbound
    assert WriteBack(sync.store, sync.directory).drain() == 1
    seen = ldapsearch_photo(seeded, user_dn(14))
    assert seen is not None and seen != before
    assert Image.open(io.BytesIO(seen)).size == (96, 96)
    assert sync.store.pending_writebacks() == []
    sync.close()


def test_directory_upload_command(
    home: Path, seeded: Slapd, run_cli: RunCli, tmp_path: Path
) -> None:
    write_config(home, seeded.directory_settings())
    picture = tmp_path / "me.png"
    Image.new("RGB", (500, 400), (30, 160, 60)).save(picture)
    out = run_cli("directory", "upload", address(21), str(picture)).stdout.decode()
    assert "96×96 JPEG" in out and user_dn(21) in out
    seen = ldapsearch_photo(seeded, user_dn(21))
    assert seen is not None and Image.open(io.BytesIO(seen)).size == (96, 96)

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    refused = run_cli("directory", "upload", address(21), str(text), check=False)
    assert refused.returncode == 1 and b"JPEG or PNG" in refused.stderr
    missing = run_cli("directory", "upload", "nobody@example.org", str(picture), check=False)
    assert missing.returncode == 1 and b"No directory entry" in missing.stderr

    run_cli("sync", "--full")
    shown = run_cli("sync", "--status", "--user", address(21)).stdout.decode()
    assert "served: 96×96 JPEG, from the directory" in shown and user_dn(21) in shown
    assert "1000 entries match" in run_cli("directory", "check").stdout.decode()


# --- garbage in the directory ----------------------------------------------------------------
def test_malformed_directory_photos(home: Path, seeded: Slapd, run_cli: RunCli) -> None:
    app = make_app(home, seeded)
    assert engine_for(app).full().ok
    good = {
        i: app.store.get_directory_thumbnail(app.store.find_user(address(i)).id)  # type: ignore[union-attr]
        for i in range(4)
    }

    noise = Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3))
    big = io.BytesIO()
    noise.save(big, "JPEG", quality=100)
    assert len(big.getvalue()) > imaging.DIRECTORY_LIMIT
    set_photo_in_ldap(seeded, 0, b"this is not an image, it is a sentence")
    set_photo_in_ldap(seeded, 1, big.getvalue())
    set_photo_in_ldap(seeded, 2, base64.b64encode(photo(2, 9)))
    set_photo_in_ldap(seeded, 3, photo(3, 9)[:300])  # truncated JPEG

    report = engine_for(app).delta()
    assert report.ok  # garbage is a per-user problem, not a failed sync
    assert report.photo_problems == 3 and report.photos_new == 1

    def slot(i: int) -> DirectoryThumbnail:
        found = app.store.get_directory_thumbnail(app.store.find_user(address(i)).id)  # type: ignore[union-attr]
        assert found is not None
        return found

    assert "not a usable image" in slot(0).problem and "text" in slot(0).problem
    assert "over the 102,400-byte limit" in slot(1).problem
    assert "damaged" in slot(3).problem or "not a usable image" in slot(3).problem
    for i in (0, 1, 3):  # the last good photo is kept and still served
        assert slot(i).jpeg == good[i].jpeg  # type: ignore[union-attr]
    decoded = slot(2)
    assert decoded.jpeg is not None and decoded.jpeg != good[2].jpeg  # type: ignore[union-attr]
    assert "base64" in decoded.problem

    # Seen once: the same garbage is not re-processed or re-reported by the next run.
    assert engine_for(app).delta().photo_problems == 0
    shown = run_cli("sync", "--status").stdout.decode()
    assert "not a usable image" in shown and "102,400" in shown
    user_view = run_cli("sync", "--status", "--user", address(1)).stdout.decode()
    assert "problem with the directory's value:" in user_view and "102,400" in user_view
    # The same facts as JSON (`--json`), from the same store.

    status = json.loads(run_cli("sync", "--status", "--json").stdout)
    delta = status["runs"]["delta"]  # what the text showed: the run's problems, as recorded
    assert delta["ok"] is True and any("102,400" in p for p in delta["problems"])
    facts = json.loads(run_cli("sync", "--status", "--user", address(1), "--json").stdout)
    assert facts["address"] == address(1) and facts["source"] == "directory"
    assert facts["dn"] and "102,400" in facts["directory_photo"]["problem"]
    assert facts["directory_photo"]["usable"] is True  # the last good photo is still served

    # A good photo again clears the problem.
    set_photo_in_ldap(seeded, 0, photo(0, 3))
    engine_for(app).delta()
    assert slot(0).problem is None and slot(0).jpeg != good[0].jpeg  # type: ignore[union-attr]
    app.close()


def test_account_state_mapping(home: Path, seeded: Slapd) -> None:
    app = make_app(
        home, seeded, account_state={"attribute": "userAccountControl", "disabled_bits": 2}
    )
    conn = seeded.connection()
    conn.modify(user_dn(5), {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]})
    assert engine_for(app).full().ok
    assert app.store.find_user(address(5)).account is Account.DISABLED  # type: ignore[union-attr]
    conn.modify(user_dn(5), {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})
    assert engine_for(app).delta().updated == 1
    assert app.store.find_user(address(5)).account is Account.HD  # type: ignore[union-attr]
    app.close()


# --- watch -----------------------------------------------------------------------------------
def test_watch_picks_up_a_change_within_seconds(home: Path, seeded: Slapd, run_cli: RunCli) -> None:
    write_config(home, seeded.directory_settings(watch_interval=0.2))
    run_cli("sync", "--full")
    env = {**os.environ, "USERPHOTO_HOME": str(home)}
    proc = subprocess.Popen(
        [str(BIN / "userphoto"), "sync", "--watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        app = App(Settings.load(home))
        user = app.store.find_user(address(33))
        assert user is not None
        old = app.store.get_directory_thumbnail(user.id)
        wait_for_watch(app)
        set_photo_in_ldap(seeded, 33, photo(33, 7))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            now = app.store.get_directory_thumbnail(user.id)
            if now is not None and now.raw_hash != old.raw_hash:  # type: ignore[union-attr]
                break
            time.sleep(0.05)
        else:
            pytest.fail("the watch did not pick up the change within 5 s")
        assert time.monotonic() - t0 < 3
        assert app.store.get_photo(user.id, PhotoState.SAVED) is None
        app.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert b"stopped" in out


def test_through_the_http_server_both_ways(home: Path, seeded: Slapd, run_cli: RunCli) -> None:
    """A synced directory photo is what members get; an HD upload over HTTP reaches LDAP."""
    import httpx

    from tests.support.server import start_server, stop_server

    write_config(home, seeded.directory_settings(writeback=True))
    run_cli("sync", "--full")
    viewer = run_cli("token", "create", address(40)).stdout.decode().strip()
    own = run_cli("token", "create", address(41)).stdout.decode().strip()
    proc, base = start_server(home)
    try:
        got = httpx.get(
            f"{base}/v1/users/{address(41)}/photo", headers={"Authorization": f"Bearer {viewer}"}
        )
        assert got.status_code == 200 and got.headers["x-photo-source"] == "directory"

        body = io.BytesIO()
        Image.new("RGB", (300, 300), (200, 200, 20)).save(body, "JPEG")
        put = httpx.put(
            f"{base}/v1/users/{address(41)}/photo",
            content=body.getvalue(),
            headers={"Authorization": f"Bearer {own}", "Content-Type": "image/jpeg"},
            # The server may still be starting its image workers, and the answer waits for
            # the LDAP write: httpx's 5 s default timed out once on a loaded machine.
            timeout=60,
        )
        assert put.status_code in (200, 201, 204), put.text
        written = ldapsearch_photo(seeded, user_dn(41))  # written by the server's listener
        assert written is not None and Image.open(io.BytesIO(written)).size == (96, 96)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got = httpx.get(
                f"{base}/v1/users/{address(41)}/photo",
                headers={"Authorization": f"Bearer {viewer}"},
            )
            if got.headers.get("x-photo-source") == "hd":
                break
            time.sleep(0.05)
        assert got.headers["x-photo-source"] == "hd"  # once there is an HD photo, it wins
        app = App(Settings.load(home))
        assert engine_for(app).delta().photos_new == 0  # our write read back: no loop
        app.close()
    finally:
        stop_server(proc)
