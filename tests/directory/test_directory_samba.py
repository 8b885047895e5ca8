"""Directory sync against a real Samba AD DC: objectGUID, proxyAddresses, userAccountControl,
the uSNChanged delta cursor, and write-back readable by `ldapsearch`."""

from __future__ import annotations

import base64
import io
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import ldap3
import pytest
from PIL import Image

from tests.support.directory import write_config
from tests.support.samba import ADMIN_DN, ADMIN_PASSWORD, URI, USERS, Samba, add_person, netns
from tests.support.slapd import photo
from userphoto.app import App
from userphoto.config import Settings
from userphoto.directory import status
from userphoto.directory.sync import SyncEngine
from userphoto.directory.sync.watch import watch
from userphoto.model import Account


@pytest.fixture(params=[True, False], ids=["dirsync", "usnchanged"])
def ad(samba: Samba, home: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Samba, App]]:
    """A Samba DC with 30 people, and an App pointed at it; the test body runs in its netns."""
    with netns(samba.ns):
        conn = samba.connection()
        for i in range(30):
            add_person(
                conn,
                f"P{i:02d}",
                photo=photo(i) if i != 3 else None,
                disabled=(i == 4),
                employee_id=f"E{i:03d}",
                aliases=(f"alias{i}@up.example",) if i == 5 else (),
            )
        conn.unbind()
        write_config(home, samba.directory_settings(writeback=True, dirsync=request.param))
        app = App(Settings.load(home))
        yield samba, app
        app.close()


def engine(app: App) -> SyncEngine:
    assert app.directory is not None
    return SyncEngine(app.store, app.directory)


def test_ad_identity_aliases_account_state_and_delta(ad: tuple[Samba, App]) -> None:
    samba, app = ad
    report = engine(app).full()
    assert report.ok, report.error
    assert report.added == 30  # Administrator, Guest, krbtgt have no mail: skipped
    assert report.skipped >= 3 and report.photos_new == 29

    user = app.store.find_user("p05@up.example")
    assert user is not None
    conn = samba.connection()
    conn.search(user.attributes["dn"], "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    guid = conn.response[0]["raw_attributes"]["objectGUID"][0]
    assert user.id == str(uuid.UUID(bytes_le=guid))  # objectGUID, as AD prints it
    assert user.aliases == ["alias5@up.example"]  # from proxyAddresses smtp:
    assert user.attributes["sAMAccountName"] == "p05"
    assert user.attributes["employeeID"] == "E005"
    assert app.store.find_user("p04@up.example").account is Account.DISABLED  # type: ignore[union-attr]
    assert app.store.get_directory_thumbnail(app.store.find_user("p03@up.example").id) is None  # type: ignore[union-attr]
    cursor = app.store.get_state(status.CURSOR_KEY)
    kind = "dirsync" if app.directory.dirsync else "usn"  # type: ignore[union-attr]
    assert cursor is not None and f'"kind": "{kind}"' in cursor

    # Three changes; the delta (DirSync or uSNChanged) reads exactly those three entries.
    conn.modify(f"CN=P01,{USERS}", {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [photo(1, 4)])]})
    conn.modify(f"CN=P04,{USERS}", {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["544"])]})
    conn.modify(f"CN=P06,{USERS}", {"displayName": [(ldap3.MODIFY_REPLACE, ["Renamed Six"])]})
    delta = engine(app).delta()
    assert delta.ok and delta.mode == "delta"
    assert delta.seen == 3
    assert delta.photos_new == 1
    assert app.store.find_user("p04@up.example").account is Account.HD  # type: ignore[union-attr]
    assert app.store.find_user("p06@up.example").display_name == "Renamed Six"  # type: ignore[union-attr]
    assert not engine(app).delta().changed

    # Deleted in AD: DirSync reports it in the next delta; with uSNChanged the next full
    # sync notices (1 of 30 is under the guard either way).
    conn.delete(f"CN=P07,{USERS}")
    if kind == "dirsync":
        assert engine(app).delta().gone == 1
    else:
        assert engine(app).delta().gone == 0
        assert engine(app).full().gone == 1
    assert app.store.find_user("p07@up.example").directory_gone  # type: ignore[union-attr]
    conn.unbind()


def test_ad_writeback_visible_through_ldapsearch_without_loop(ad: tuple[Samba, App]) -> None:
    samba, app = ad
    assert engine(app).full().ok
    buf = io.BytesIO()
    Image.new("RGB", (640, 640), (120, 30, 200)).save(buf, "JPEG")
    app.photos.set("p08@up.example", buf.getvalue())

    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            samba.ns,
            "ldapsearch",
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            URI,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            "-b",
            f"CN=P08,{USERS}",
            "-s",
            "base",
            "thumbnailPhoto",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("thumbnailPhoto:: "))
    written = base64.b64decode(line.split(":: ", 1)[1])
    assert Image.open(io.BytesIO(written)).size == (96, 96)

    again = engine(app).delta()
    assert again.ok and again.seen == 1 and again.photos_new == 0  # our write, read back
    slot = app.store.get_directory_thumbnail(app.store.find_user("p08@up.example").id)  # type: ignore[union-attr]
    assert slot is not None and slot.written_by_us


def test_ad_watch_wakes_on_change_notification(ad: tuple[Samba, App]) -> None:
    samba, app = ad
    assert app.directory is not None
    # Polling every 30 s: only the pushed change notification can make this quick.
    engine_ = SyncEngine(app.store, replace(app.directory, watch_interval=30.0))
    stop = threading.Event()
    cycles: list[object] = []
    watcher = threading.Thread(
        target=watch, args=(engine_, stop), kwargs={"after_cycle": cycles.append}
    )
    watcher.start()  # inside the DC's netns: the thread inherits it
    try:
        deadline = time.monotonic() + 20
        while not cycles and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cycles, "the first watch cycle did not finish"
        time.sleep(0.5)  # the notification search is open once the first cycle is done
        user = app.store.find_user("p10@up.example")
        assert user is not None
        old = app.store.get_directory_thumbnail(user.id)
        assert old is not None
        conn = samba.connection()
        t0 = time.monotonic()
        conn.modify(f"CN=P10,{USERS}", {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [photo(10, 8)])]})
        while time.monotonic() - t0 < 10:
            now = app.store.get_directory_thumbnail(user.id)
            if now is not None and now.raw_hash != old.raw_hash:
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        assert elapsed < 2, f"the change took {elapsed:.1f}s (notification not working?)"
        conn.unbind()
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()


def test_ad_over_ldaps_and_starttls(samba: Samba, home: Path) -> None:
    with netns(samba.ns):
        conn = samba.connection()
        add_person(conn, "Tls", photo=photo(77))
        conn.unbind()
        # Samba's self-signed certificate: verification must be switched off to connect...
        for extra in (
            {"uri": "ldaps://127.0.0.1:636", "tls_verify": False},
            {"uri": URI, "starttls": True, "tls_verify": False},
        ):
            write_config(home, samba.directory_settings(**extra))
            app = App(Settings.load(home))
            report = engine(app).full()
            assert report.ok, (extra, report.error)
            assert app.store.find_user("tls@up.example") is not None
            app.close()
        # ... and by default it is verified, so the same server is refused, with the reason.
        write_config(home, samba.directory_settings(uri="ldaps://127.0.0.1:636"))
        app = App(Settings.load(home))
        failed = engine(app).full()
        assert not failed.ok and "certificate verify failed" in (failed.error or "")
        app.close()


def test_ad_deletions_go_through_the_delete_guard(ad: tuple[Samba, App]) -> None:
    """Deletions a DirSync delta reports pass the same delete_guard as a full sync's."""
    samba, app = ad
    assert engine(app).full().ok
    conn = samba.connection()
    for i in (11, 12, 13, 14):  # 4 of 30: over the default guard of 10%
        conn.delete(f"CN=P{i:02d},{USERS}")
    conn.unbind()
    if app.directory.dirsync:  # type: ignore[union-attr]
        refused = engine(app).delta()
        assert refused.mode == "delta"
    else:  # uSNChanged deltas see no deletions; the full sync's reconciliation does
        assert engine(app).delta().gone == 0
        refused = engine(app).full()
    assert not refused.ok and refused.gone == 0
    assert "refused to mark 4 of 30 directory users gone" in (refused.error or "")
    assert "sync --full --force" in (refused.error or "")
    assert not any(app.store.find_user(f"p{i}@up.example").directory_gone for i in (11, 14))  # type: ignore[union-attr]

    forced = engine(app).full(force=True)
    assert forced.ok and forced.gone == 4
    assert all(app.store.find_user(f"p{i}@up.example").directory_gone for i in (11, 12, 13, 14))  # type: ignore[union-attr]
