"""The write-back queue is a table: concurrent writers lose no entry, concurrent drainers never
claim one entry twice (FOR UPDATE SKIP LOCKED on PostgreSQL), a re-queue during a claim is
kept. On both stores, each racer with its own connection."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from userphoto.store import Store, open_store

pytestmark = pytest.mark.usefixtures("store_env")


def race(store_url: str, work, n: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Run `work(store, i)` in `n` threads at once, each on its own store (connection)."""
    stores = [open_store(store_url) for _ in range(n)]
    gate = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            gate.wait()
            work(stores[i], i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in stores:
        s.close()
    assert not errors, errors


def test_two_writers_lose_no_entry(store_env: str) -> None:
    def write(store: Store, i: int) -> None:
        for k in range(150):
            store.queue_writeback(f"w{i}-{k}")
            store.queue_writeback(f"both-{k}")  # the same users from both writers

    race(store_env, write)
    store = open_store(store_env)
    pending = store.pending_writebacks()
    store.close()
    expected = {f"w{i}-{k}" for i in range(2) for k in range(150)} | {
        f"both-{k}" for k in range(150)
    }
    assert len(pending) == len(expected) and set(pending) == expected


def test_two_drainers_claim_each_entry_once(store_env: str) -> None:
    store = open_store(store_env)
    for k in range(300):
        store.queue_writeback(f"u{k:03d}")
    claimed: list[str] = []
    lock = threading.Lock()

    def drain(s: Store, i: int) -> None:
        while batch := s.claim_writebacks(f"drainer-{i}", 7, 60):
            for user_id, version in batch:
                s.finish_writeback(user_id, version)
            with lock:
                claimed.extend(u for u, _ in batch)

    race(store_env, drain)
    twice = [u for u, n in Counter(claimed).items() if n > 1]
    assert not twice and len(claimed) == 300
    assert store.pending_writebacks() == []
    store.close()


def test_requeued_during_a_claim_stays_and_claims_expire(store_env: str) -> None:
    store = open_store(store_env)
    store.queue_writeback("ada")
    [(user_id, version)] = store.claim_writebacks("a", 10, 60)
    assert store.claim_writebacks("b", 10, 60) == []  # held by a
    store.queue_writeback("ada")  # a new upload while a writes the old one
    store.finish_writeback(user_id, version)
    assert store.pending_writebacks() == ["ada"]  # kept, and free again at once
    [(_, newer)] = store.claim_writebacks("b", 10, 0.3)
    assert newer > version
    time.sleep(0.5)  # b died without finishing: its claim runs out
    assert [u for u, _ in store.claim_writebacks("c", 10, 60)] == ["ada"]
    store.close()


def test_sqlite_queue_kept_as_json_moves_into_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from userphoto.store.sqlite import MIGRATIONS, SQLiteStore

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:  # a store from before the queue table
        db.executescript(script)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO state VALUES ('directory.writeback.pending', '[\"u2\", \"u1\"]')")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert sorted(store.pending_writebacks()) == ["u1", "u2"]
    assert store.get_state("directory.writeback.pending") is None
    store.close()
