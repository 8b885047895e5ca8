"""The admin listing stays fast at 100,000 users: every filter, first and last page."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

import pytest

from userphoto.app import App
from userphoto.store import StatusFilter, StatusQuery

N = 100_000


@pytest.mark.slow
def test_listing_pages_at_100k_users(app: App) -> None:
    store = app.store
    now = datetime.now(UTC).isoformat()
    # Seeded with plain SQL (add_user one by one would take most of a minute).
    db = sqlite3.connect(app.settings.store_url.removeprefix("sqlite://"))
    with db:
        db.executemany(
            "INSERT INTO users (id, address, display_name, account, picture, visibility, "
            "created, updated) VALUES (?, ?, ?, ?, 'photo', 'organization', ?, ?)",
            (
                (
                    f"u{i:06d}",
                    f"user{i:06d}@big.example",
                    f"Person {i}",
                    "disabled" if i % 997 == 0 else "hd",
                    now,
                    now,
                )
                for i in range(N)
            ),
        )
        db.executemany(
            "INSERT INTO directory_thumbnails (user_id, jpeg, raw_hash, raw_size, width, height, "
            "problem, seen) VALUES (?, ?, 'h', 10, 96, 96, ?, ?)",
            (
                (
                    f"u{i:06d}",
                    None if i % 1000 == 0 else b"jpeg",
                    "not an image" if i % 1000 == 0 else None,
                    now,
                )
                for i in range(0, N, 10)
            ),
        )
    db.close()
    slowest = 0.0
    for f in StatusFilter:
        total = store.count_photo_status(StatusQuery(filter=f))
        for offset in (0, max(0, total - 50)):
            query = StatusQuery("", f, offset, 50)
            start = time.perf_counter()
            rows = store.list_photo_status(query)
            assert store.count_photo_status(query) == total
            slowest = max(slowest, time.perf_counter() - start)
            assert len(rows) == min(50, total)
    start = time.perf_counter()
    found = store.list_photo_status(StatusQuery("person 4242", limit=50))
    slowest = max(slowest, time.perf_counter() - start)
    assert [s.user.display_name for s in found][:1] == ["Person 4242"]
    assert store.count_photo_status(StatusQuery(filter=StatusFilter.PROBLEMS)) == 200
    # Measured ~0.15 s worst case on the 2-core reference machine; generous for CI noise.
    assert slowest < 1.5, f"slowest page took {slowest:.2f}s"
