"""One active `sync --watch` per store: real processes, real slapd, on SQLite and PostgreSQL.

Two watchers start; exactly one works, the other stands by. The active one is killed with
SIGKILL (no chance to hand over); the standby takes over within 10 s and applies a directory
change. `sync --status` names the active one and since when.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from tests.conftest import BIN, RunCli
from tests.support.slapd import Slapd, ldif, photo, uid, user_dn
from userphoto.app import App
from userphoto.config import Settings
from userphoto.store import Store, open_store

pytestmark = [
    pytest.mark.skipif(not Path("/usr/sbin/slapd").exists(), reason="slapd missing"),
    pytest.mark.usefixtures("store_env"),
]
LEASE = "directory.sync"


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path / "slapd")
    server.seed(ldif(range(20)))
    server.start()
    yield server
    server.stop()


def configure(home: Path, server: Slapd) -> None:
    settings = server.directory_settings(watch_interval=0.2)
    lines = ["[directory]"] + [
        f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}"
        for k, v in settings.items()
    ]
    (home / "userphoto.toml").write_text("\n".join(lines) + "\n")


def watcher(home: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "userphoto"), "sync", "--watch"],
        env={**os.environ, "USERPHOTO_HOME": str(home)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def holder(proc: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def active(store: Store) -> str | None:
    lease = store.get_lease(LEASE)
    from datetime import UTC, datetime

    return lease.holder if lease and lease.expires > datetime.now(UTC) else None


def wait(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what} within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - started


def test_one_active_sync_and_a_standby_that_takes_over(
    home: Path, tmp_path: Path, directory: Slapd, run_cli: RunCli, store_env: str
) -> None:
    configure(home, directory)
    run_cli("sync", "--full")
    store = open_store(store_env)
    first = watcher(home, tmp_path / "first.log")
    second: subprocess.Popen | None = None
    try:
        wait(lambda: active(store) == holder(first), 15, "the first watcher did not become active")
        second = watcher(home, tmp_path / "second.log")
        wait(
            lambda: b"standby" in (tmp_path / "second.log").read_bytes(),
            15,
            "the second watcher did not report standing by",
        )
        assert b"is the active sync" in (tmp_path / "second.log").read_bytes()
        status = run_cli("sync", "--status").stdout.decode()
        assert f"active sync: {holder(first)} since " in status

        # The standby does no work: a change now is applied by the first watcher only.
        app = App(Settings.load(home))
        user = app.store.find_user(f"{uid(3)}@example.org")
        assert user is not None

        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        took = wait(
            lambda: active(store) == holder(second),  # type: ignore[arg-type]
            10,
            "the standby did not take over",
        )
        assert took < 10
        status = run_cli("sync", "--status").stdout.decode()
        assert f"active sync: {holder(second)} since " in status

        # ...and it works: a directory change made now reaches the store.
        before = app.store.get_directory_thumbnail(user.id)
        conn = directory.connection()
        conn.modify(user_dn(3), {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [photo(3, 9)])]})
        conn.unbind()
        wait(
            lambda: (
                (t := app.store.get_directory_thumbnail(user.id)) is not None
                and before is not None
                and t.raw_hash != before.raw_hash
            ),
            10,
            "the new active sync did not apply the directory change",
        )
        app.close()
        assert b"active (" in (tmp_path / "second.log").read_bytes()
    finally:
        if second is not None:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        store.close()
    assert second.returncode == 0
    assert b"stopped" in (tmp_path / "second.log").read_bytes()
    again = open_store(store_env)
    assert active(again) is None  # a clean stop hands the lease back
    again.close()


def test_lease_rules(store_env: str) -> None:
    store = open_store(store_env)
    try:
        a = store.take_lease("job", "a", 0.5)
        assert a is not None and a.holder == "a"
        assert store.take_lease("job", "b", 0.5) is None  # held by a
        renewed = store.take_lease("job", "a", 0.5)
        assert renewed is not None and renewed.since == a.since and renewed.expires > a.expires
        time.sleep(0.7)
        b = store.take_lease("job", "b", 5)  # a stopped renewing: b may take it
        assert b is not None and b.holder == "b" and b.since > a.since
        store.release_lease("job", "a")  # not a's any more: nothing happens
        assert store.get_lease("job").holder == "b"  # type: ignore[union-attr]
        store.release_lease("job", "b")
        assert store.get_lease("job") is None
    finally:
        store.close()
