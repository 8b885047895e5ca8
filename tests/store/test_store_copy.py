"""`userphoto store copy`: the demo organization SQLite -> PostgreSQL -> SQLite, byte for byte;
resuming an interrupted copy; refusing a target that differs. Real SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import BIN, RunCli
from tests.support.server import directory_jpeg
from userphoto import auth
from userphoto.app import App
from userphoto.config import Settings
from userphoto.demo import portrait
from userphoto.model import DirectoryThumbnail, PhotoState, User
from userphoto.photos import put_photo
from userphoto.store import TABLES, open_store
from userphoto.store.copy import CopyMismatch, copy_store, table_digest


def enrich(app: App) -> None:
    """Everything the demo alone does not hold: versions, a preview, a removal record, a
    directory slot, credentials, sync state."""
    store = app.store
    adele = "adele.vance@contoso.example"
    app.photos.set(adele, portrait(5, 300, 300))  # a superseded version behind it
    app.photos.set(adele, portrait(6, 300, 300), preview=True)
    people = [u for u in store.iter_users() if store.get_photo(u.id)]
    app.photos.remove(people[-1].id)  # removal record
    jpeg = directory_jpeg()
    store.put_directory_thumbnail(
        DirectoryThumbnail(people[0].id, jpeg, "raw", len(jpeg), 80, 100, None, datetime.now(UTC))
    )
    auth.create_token(store, adele)
    auth.create_token(store, "it@contoso.example", admin=True)
    auth.add_partner(store, "partner.example")
    store.set_state("directory.cursor", '{"usn": 42}')


def digests(url: str) -> dict[str, tuple[int, str]]:
    store = open_store(url)
    try:
        return {t.name: table_digest(store, t) for t in TABLES}
    finally:
        store.close()


def cli(home: Path, store_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "USERPHOTO_HOME": str(home), "USERPHOTO_STORE_URL": store_url}
    return subprocess.run(
        [str(BIN / "userphoto"), *args], env=env, capture_output=True, timeout=300
    )


def test_demo_round_trips_sqlite_postgres_sqlite(
    run_cli: RunCli, app: App, home: Path, pg_url: str, tmp_path: Path
) -> None:
    run_cli("demo")
    enrich(app)
    source_url = app.settings.store_url
    before = digests(source_url)
    assert before["renditions"][0] > 100 and before["photos"][0] > before["renditions"][0] / 10

    out = run_cli("store", "copy", "--to", pg_url).stdout.decode()
    assert "counts and hashes match" in out
    moved = sum(rows for rows, _ in before.values())
    assert f"({moved:,} rows moved by this run)" in out
    assert digests(pg_url) == before
    again = run_cli("store", "copy", "--to", pg_url).stdout.decode()  # idempotent
    assert "(0 rows moved by this run)" in again

    # The copy serves: same photo bytes through the PostgreSQL store, and back to SQLite.
    back = f"sqlite:///{tmp_path / 'back.db'}"
    proc = cli(home, pg_url, "store", "copy", "--to", back)
    assert proc.returncode == 0, proc.stderr.decode()
    assert digests(back) == before
    pg = open_store(pg_url)
    try:
        adele = pg.find_user("adele.vance@contoso.example")
        assert adele is not None
        saved = pg.get_photo(adele.id)
        assert saved is not None and pg.get_photo(adele.id, PhotoState.PREVIEW) is not None
        assert pg.get_rendition(saved.id, 240) == app.store.get_rendition(saved.id, 240)
        assert [p.version for p in pg.photo_history(adele.id)] == [3, 2, 1]
        assert pg.get_state("directory.cursor") == '{"usn": 42}'
        # New rows continue after the copied ids.
        bob = pg.add_user(User(id="new", address="new@contoso.example", display_name="New"))
        assert bob.id == "new" and pg.audit_log("new")[0].action == "user.add"
    finally:
        pg.close()
    on_pg = cli(home, pg_url, "get", "adele.vance@contoso.example", "-o", str(tmp_path / "a.jpg"))
    assert on_pg.returncode == 0, on_pg.stderr.decode()


def test_interrupted_copy_resumes_and_then_verifies(app: App, pg_url: str) -> None:
    for i in range(30):
        app.store.add_user(User(id=f"u{i:02d}", address=f"u{i}@x.example", display_name="U"))
        if i % 3 == 0:
            app.photos.set(f"u{i:02d}", portrait(i, 120, 120))
    target = open_store(pg_url)

    def stop_after_a_few(table: str, moved: int) -> None:
        if table == "photos":  # after the first batch of photos has committed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_store(app.store, target, batch=7, progress=stop_after_a_few)
    partial = target.count_users()
    assert partial == 30 and len(target.dump_rows(TABLES[3], None, 1000)) == 7
    report = copy_store(app.store, target, batch=7)
    assert {t.name: t.moved for t in report.tables}["users"] == 0  # not copied twice
    assert all(t.rows for t in report.tables if t.name in {"users", "photos", "renditions"})
    target.close()
    assert digests(pg_url) == digests(app.settings.store_url)


def test_a_target_holding_other_data_is_refused(app: App, pg_url: str, home: Path) -> None:
    app.store.add_user(User(id="a", address="a@x.example", display_name="A"))
    other = open_store(pg_url)
    other.add_user(User(id="z", address="z@x.example", display_name="Z"))
    with pytest.raises(CopyMismatch, match="held other data"):
        copy_store(app.store, other)  # z sorts after a: a looks copied, its aliases are not
    fresh = open_store(f"sqlite:///{home / 'other.db'}")
    fresh.add_user(User(id="0", address="0@x.example", display_name="0"))
    with pytest.raises(CopyMismatch, match=r"users \(1 rows in the source, 2 in the target\)"):
        copy_store(app.store, fresh)
    fresh.close()
    other.close()
    proc = cli(home, app.settings.store_url, "store", "copy", "--to", app.settings.store_url)
    assert proc.returncode == 1 and b"already uses" in proc.stderr


def test_store_copy_help_teaches(run_cli: RunCli) -> None:
    out = run_cli("store", "copy", "--help").stdout.decode()
    assert "resumes" in out and "postgresql://" in out
    _ = Settings  # the CLI reads the same settings as the library


@pytest.mark.slow
def test_ten_thousand_users_round_trip_byte_identical(
    app: App, pg_url: str, tmp_path: Path
) -> None:
    store = app.store
    store.add_users(
        [
            User(id=f"u{i:05d}", address=f"u{i}@big.example", display_name=f"U {i}")
            for i in range(10_000)
        ]
    )
    renders = [
        app.photos.render(User(id="x", address="x@x", display_name="x"), portrait(i, 120, 120))
        for i in range(40)
    ]
    with store.batch():
        for i in range(0, 10_000, 2):  # every other user has a photo (40 distinct renders)
            put_photo(store, f"u{i:05d}", renders[i % 40], PhotoState.SAVED, actor="t", via="test")
    before = digests(app.settings.store_url)
    assert before["users"][0] == 10_000 and before["renditions"][0] == 5_000 * 4

    pg = open_store(pg_url)
    first = copy_store(store, pg, batch=2000)
    pg.close()
    assert {t.name: t.moved for t in first.tables}["renditions"] == 20_000
    assert digests(pg_url) == before
    back = f"sqlite:///{tmp_path / 'back.db'}"
    source, target = open_store(pg_url), open_store(back)
    copy_store(source, target, batch=2000)
    source.close()
    target.close()
    assert digests(back) == before
