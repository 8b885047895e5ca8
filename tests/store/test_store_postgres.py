"""What only the PostgreSQL store has: a change feed shared by many processes and nodes
(LISTEN/NOTIFY with a catch-up read), and a clear StoreUnavailable when the database goes away.
Real PostgreSQL throughout; the outage is a real TCP proxy cutting every connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.postgres import SERVER, NewDatabase, PgProxy
from userphoto.errors import StoreUnavailable
from userphoto.model import ApiToken, User
from userphoto.store import Change, ChangeKind, open_store
from userphoto.store.postgres import PostgresStore


def user(i: int) -> User:
    return User(id=f"u{i}", address=f"u{i}@x.example", display_name=f"U {i}")


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database: two nodes (each its own pool and listener)."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    yield a, b
    a.close()
    b.close()


def test_open_store_picks_postgres_and_migrates_once(pg_url: str) -> None:
    first = open_store(pg_url)
    second = open_store(pg_url)  # a second node starting on a migrated database
    assert isinstance(first, PostgresStore) and first.schema_version == second.schema_version
    first.close()
    second.close()


def test_changes_name_the_user_and_kind(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    g0 = b.latest_seq()
    a.add_user(user(1))
    a.update_user(User(id="u1", address="u1@x.example", display_name="One", aliases=["o@x.ex"]))
    a.add_token(ApiToken("t1", "d" * 64, "u1@x.example", False, a.find_user("u1").created))  # type: ignore[union-attr]
    a.set_state("cursor", "42")  # adapter state: no change
    changes = b.changes_since(g0)
    assert [(c.kind, c.user_id) for c in changes] == [
        (ChangeKind.USER, "u1"),
        (ChangeKind.USER, "u1"),
        (ChangeKind.CREDENTIALS, None),
    ]
    assert [c.seq for c in changes] == sorted({c.seq for c in changes})
    assert b.latest_seq() == changes[-1].seq
    assert b.changes_since(changes[0].seq, limit=1) == [changes[1]]


def test_a_failed_write_records_no_change(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.add_user(user(1))
    g = store.latest_seq()
    with pytest.raises(Exception, match="already"):
        store.add_user(user(1))
    assert store.latest_seq() == g and store.changes_since(g) == []
    store.close()


def test_bulk_load_is_one_org_change(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    g = store.latest_seq()
    store.add_users([user(i) for i in range(1500)])
    assert store.changes_since(g) == [Change(g + 1, ChangeKind.ORG, None)]
    store.close()


def test_pruned_feed_tells_a_late_follower_to_drop_everything(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.add_user(user(1))
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as pruning leaves it
        conn.execute("UPDATE change_horizon SET seq = 1")
    store.update_user(User(id="u1", address="u1@x.example", display_name="Renamed"))
    latest = store.latest_seq()
    assert store.changes_since(0) == [Change(latest, ChangeKind.ORG, None)]
    assert store.changes_since(1) == [Change(latest, ChangeKind.USER, "u1")]
    store.close()


def test_another_node_sees_a_change_within_half_a_second(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    last = b.latest_seq()
    assert b.wait_for_changes(last, timeout=0.2) == []  # nothing yet: waits, returns empty
    got: list[Change] = []
    seen_at: list[float] = []

    def follow() -> None:
        got.extend(b.wait_for_changes(last, timeout=5.0))
        seen_at.append(time.monotonic())

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.3)  # the follower is parked in LISTEN
    written_at = time.monotonic()
    a.add_user(user(7))
    follower.join(6)
    assert [(c.kind, c.user_id) for c in got] == [(ChangeKind.USER, "u7")]
    assert seen_at[0] - written_at < 0.5


def test_a_killed_listen_connection_loses_no_change(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    last = b.latest_seq()
    got: list[Change] = []
    follower = threading.Thread(target=lambda: got.extend(b.wait_for_changes(last, 10.0)))
    follower.start()
    deadline = time.monotonic() + 5
    while b._listener is None and time.monotonic() < deadline:
        time.sleep(0.01)
    listener = b._listener
    assert listener is not None
    time.sleep(0.2)  # parked in LISTEN
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (listener.info.backend_pid,))
    a.add_user(user(8))  # made around the time B's listening connection died
    follower.join(10)
    assert [(c.kind, c.user_id) for c in got] == [(ChangeKind.USER, "u8")]
    assert b._listener is not listener  # reconnected
    # And B keeps following on its new connection, woken by NOTIFY again.
    last = got[-1].seq
    timer = threading.Timer(0.3, lambda: a.add_user(user(9)))
    timer.start()
    started = time.monotonic()
    assert [c.user_id for c in b.wait_for_changes(last, timeout=5.0)] == ["u9"]
    assert time.monotonic() - started < 0.3 + 0.5
    timer.join()


def test_database_gone_then_back(new_pg_database: NewDatabase) -> None:
    url = new_pg_database()
    proxy = PgProxy()
    store = PostgresStore(proxy.url(url.rsplit("/", 1)[1]), timeout=1.0)
    direct = PostgresStore(url)
    try:
        store.add_user(user(1))
        last = store.latest_seq()
        proxy.down()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            store.find_user("u1")
        assert time.monotonic() - started < 5
        assert info.value.status == 503 and info.value.retry_after > 0
        assert "127.0.0.1" in info.value.message and "postgres@" not in info.value.message
        with pytest.raises(StoreUnavailable):
            store.add_user(user(2))
        with pytest.raises(StoreUnavailable):
            store.wait_for_changes(last, timeout=0.5)
        direct.add_user(user(3))  # a change another node made during the outage
        proxy.up()
        # Back by itself: the pool replaces its dead connections, the feed catches up.
        deadline = time.monotonic() + 15
        while True:
            try:
                found = store.find_user("u3")
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not recover"
                time.sleep(0.1)
        assert found is not None and found.id == "u3"
        got = store.wait_for_changes(last, timeout=3.0)
        assert [c.user_id for c in got] == ["u3"]
        assert store.find_user("u2") is None  # the refused write left nothing
    finally:
        store.close()
        direct.close()
        proxy.down()


def test_unreachable_database_at_start_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="not reachable"):
        PostgresStore("postgresql://postgres@127.0.0.1:9/none", timeout=1.0)
