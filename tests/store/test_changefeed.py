"""The store's per-user change feed (SQLite): what each write records, in its own transaction,
and what a follower that fell behind the pruned rows is told."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from userphoto.errors import Conflict
from userphoto.model import ApiToken, AuditEntry, Partner, User
from userphoto.store import Change, ChangeKind
from userphoto.store.sqlite import SQLiteStore
from userphoto.store.sqlite import changes as sqlite_store


def user(n: int) -> User:
    return User(id=f"u{n}", address=f"user{n}@feed.test", display_name=f"User {n}")


def kinds(changes: list[Change]) -> list[tuple[ChangeKind, str | None]]:
    return [(c.kind, c.user_id) for c in changes]


def test_each_write_records_one_change_for_its_user(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    start = store.latest_seq()
    store.add_user(user(1))
    store.add_users([user(2), user(3)])
    u = store.find_user("u2")
    assert u is not None
    u.display_name = "Renamed"
    store.update_user(u)
    store.add_token(ApiToken("t1", "d" * 64, "user1@feed.test", False, datetime.now(UTC)))
    store.put_partner(Partner("partner.test", "HS256", "secret", datetime.now(UTC)))
    store.delete_token("t1")
    store.delete_token("no-such-token")  # deleted nothing: no change
    store.audit(AuditEntry(datetime.now(UTC), "t", "u1", "noop", "test"))  # no answer changes
    store.set_state("cursor", "42")  # adapter state: no change
    changes = store.changes_since(start)
    assert kinds(changes) == [
        (ChangeKind.USER, "u1"),
        (ChangeKind.USER, "u2"),
        (ChangeKind.USER, "u3"),
        (ChangeKind.USER, "u2"),
        (ChangeKind.CREDENTIALS, None),
        (ChangeKind.CREDENTIALS, None),
        (ChangeKind.CREDENTIALS, None),
    ]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert store.latest_seq() == seqs[-1]
    assert kinds(store.changes_since(seqs[2], limit=2)) == [
        (ChangeKind.USER, "u2"),
        (ChangeKind.CREDENTIALS, None),
    ]


def test_a_failed_write_records_no_change(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    store.add_user(user(1))
    latest = store.latest_seq()
    with pytest.raises(Conflict):
        store.add_user(user(1))
    assert store.changes_since(latest) == []


def test_another_process_sees_changes_and_wait_blocks_until_one(tmp_path: Path) -> None:
    writer = SQLiteStore(tmp_path / "db")
    follower = SQLiteStore(tmp_path / "db")  # its own connection, as another process has
    latest = follower.latest_seq()
    started = time.monotonic()
    assert follower.wait_for_changes(latest, timeout=0.3) == []
    assert time.monotonic() - started >= 0.25

    def later() -> None:
        time.sleep(0.3)
        writer.add_user(user(7))

    thread = threading.Thread(target=later)
    thread.start()
    got = follower.wait_for_changes(latest, timeout=5)
    thread.join()
    assert kinds(got) == [(ChangeKind.USER, "u7")]


def test_a_follower_behind_the_pruned_rows_is_told_to_drop_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "CHANGES_KEPT", 50)
    store = SQLiteStore(tmp_path / "db")
    start = store.latest_seq()
    store.add_users([user(n) for n in range(1200)])  # 1,200 rows: pruning runs
    changes = store.changes_since(start)
    assert changes == [Change(store.latest_seq(), ChangeKind.ORG, None)]
    recent = store.changes_since(store.latest_seq() - 3)
    assert [c.kind for c in recent] == [ChangeKind.USER] * 3  # a recent follower goes on
