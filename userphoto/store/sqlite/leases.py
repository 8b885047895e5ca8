"""The embedded store's leases: the one active sync among several processes."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

from ..base import Lease
from .connection import SQLiteBase


class Leases(SQLiteBase):
    """Named leases with a holder and an expiry (Unix seconds)."""

    @staticmethod
    def _lease(name: str, row: sqlite3.Row) -> Lease:
        return Lease(
            name,
            row["holder"],
            datetime.fromtimestamp(row["since"], UTC),
            datetime.fromtimestamp(row["expires"], UTC),
        )

    def take_lease(self, name: str, holder: str, ttl: float) -> Lease | None:
        at = time.time()
        with self._tx() as tx:  # BEGIN IMMEDIATE: one taker at a time
            row = tx.one(
                "INSERT INTO leases VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "since = CASE WHEN holder = excluded.holder THEN since ELSE excluded.since END, "
                "holder = excluded.holder, expires = excluded.expires "
                "WHERE holder = excluded.holder OR expires < ? "
                "RETURNING holder, since, expires",
                (name, holder, at, at + ttl, at),
            )
        return self._lease(name, row) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx() as tx:
            tx.run("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def get_lease(self, name: str) -> Lease | None:
        row = self._db.execute(
            "SELECT holder, since, expires FROM leases WHERE name = ?", (name,)
        ).fetchone()
        return self._lease(name, row) if row else None
